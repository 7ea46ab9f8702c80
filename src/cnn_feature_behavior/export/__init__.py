"""Using what the study found: the chosen classifier as one Keras file (export) and the images it
classifies (predict). Modules: configuration (which classifier), fit (its refit on a transfer
split by the evaluation's own `transfer.refit.refit_configuration`), keras_model (the Keras
graph), assemble (the files' models), model_file (the .keras file and its metadata), agreement
(the written file against the refit), model_card, predict."""
