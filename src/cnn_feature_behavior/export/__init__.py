"""Using what the study found: the chosen classifier as one Keras file (export) and the images it
classifies (predict). Modules: configuration (which classifier), linear_map (its numbers, refitted
by the transfer evaluation's rules), fit (the refit on a transfer split), keras_model (the Keras
graph), assemble (the files' models), model_file (the .keras file and its metadata), agreement
(the written file against the refit), model_card, predict."""
