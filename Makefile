# Set-up, run and test (README: "Set up, run, test").
#
# `make setup` makes the project's own virtual environment, .venv (`python3 -m venv`), installs the
# project into it and converts the offline weights; every other target runs .venv's Python, so
# nothing needs activating. Overrides:
#   make setup BASE_PYTHON=python3.12   the interpreter .venv is made from
#   make setup VENV=/path/to/venv        the virtual environment's folder (give it to every target)
#   make setup PYTHON=/path/to/python    an environment of your own (conda, a venv you manage): the
#                                        project is installed into it as it is, no .venv is made;
#                                        give the same PYTHON to every target (make test PYTHON=...)
#   make setup EXTRAS=test,gpu           the extras installed (gpu: TensorFlow's CUDA libraries;
#                                        dev: pre-commit)
BASE_PYTHON ?= python3
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
EXTRAS ?= test
# The Python versions TensorFlow 2.17 to 2.21 ships wheels for, from 3.11 (the code needs it):
# pyproject.toml's requires-python (tests/test_makefile.py checks that the two agree).
MIN_PYTHON := 3.11
MAX_PYTHON := 3.13
comma := ,

.PHONY: setup venv python weights lint test study viz page-check

setup: $(if $(filter $(VENV)/bin/python,$(PYTHON)),venv,python)
	@# Environments set up before the gpu extra have tensorflow-cpu, which ships the same files
	@# as the tensorflow dependency: never both (a no-op where it is absent).
	$(PYTHON) -m pip uninstall -y -q tensorflow-cpu
	$(PYTHON) -m pip install -e ".[$(EXTRAS)]"
	$(PYTHON) -m cnn_feature_behavior.extraction.source_models.fetch_default_weights

venv: $(VENV)/bin/python

# Made once; an existing .venv is kept (delete it to make it again, e.g. from another Python).
$(VENV)/bin/python:
	@command -v $(BASE_PYTHON) >/dev/null 2>&1 || { \
	  echo "make setup: no '$(BASE_PYTHON)' here. Install Python $(MIN_PYTHON) to $(MAX_PYTHON), or name one:"; \
	  echo "  make setup BASE_PYTHON=/path/to/python3"; exit 1; }
	@$(BASE_PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(not ($(subst .,$(comma),$(MIN_PYTHON))) <= v <= ($(subst .,$(comma),$(MAX_PYTHON))))' || { \
	  echo "make setup: $(BASE_PYTHON) is Python $$($(BASE_PYTHON) -c 'import platform; print(platform.python_version())');"; \
	  echo "  the project needs Python $(MIN_PYTHON) to $(MAX_PYTHON) (those TensorFlow's wheels are built for). Name one:"; \
	  echo "  make setup BASE_PYTHON=python$(MAX_PYTHON)"; exit 1; }
	@$(BASE_PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || { \
	  echo "make setup: $(BASE_PYTHON) cannot make a virtual environment: its venv or ensurepip module is missing."; \
	  echo "  Debian, Ubuntu: sudo apt install python3-venv (or python3.X-venv for python3.X)."; \
	  echo "  Or install into an environment of your own: make setup PYTHON=/path/to/its/python"; \
	  exit 1; }
	$(BASE_PYTHON) -m venv $(VENV)

# The interpreter the targets run must exist (a plain `make test` before `make setup`).
python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "make: no Python at '$(PYTHON)': run 'make setup' first, or name your own environment's"; \
	  echo "  interpreter: make $(or $(MAKECMDGOALS),setup) PYTHON=/path/to/python"; exit 1; }

weights: python
	$(PYTHON) -m cnn_feature_behavior.extraction.source_models.fetch_default_weights

lint: python
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: python
	$(PYTHON) -m pytest

study: python
	$(PYTHON) -m kedro run

viz: python
	$(PYTHON) -m kedro viz build


# Every report and index written so far, laid out by headless Chromium in a 1,400-pixel window:
# fails on a page wider than that (Debian: apt-get install chromium). Screenshots: data/08_reporting/page_check/.
page-check: python
	$(PYTHON) -m cnn_feature_behavior.reporting.page_check --width 1400 --screenshots data/08_reporting/page_check data/08_reporting/*/index.html data/08_reporting/*/*/report.html
