PYTHON ?= python

.PHONY: setup weights lint test study viz

# Install the project and fetch the offline default weights (VGG16 ImageNet conv layers).
setup:
	$(PYTHON) -m pip install -e ".[test]"
	$(PYTHON) -m cnn_feature_behavior.extraction.source_models.fetch_default_weights

weights:
	$(PYTHON) -m cnn_feature_behavior.extraction.source_models.fetch_default_weights

lint:
	ruff check .
	ruff format --check .

test:
	$(PYTHON) -m pytest

study:
	kedro run

viz:
	kedro viz build
