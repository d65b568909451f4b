# TDT4265 assignment 1, reproduced. The front door: every target is `python make.py <target>`, which is the
# build itself (Windows, or no make: run `py make.py report` directly). `make help` lists the targets.
# Written for GNU make 3.81 (macOS) and later: nothing but plain rules.

PYTHON ?= python3
export PARAMS SEED DATASET PDF_ENGINE AUTO_INSTALL PY BUILD_DIR PDF PYTEST_ARGS BENCH_ARGS MNIST_DIR FASHION_MNIST_DIR LAB_ARGS
# make.py beside this Makefile, also for `make -f path/to/Makefile` from another folder (a path without spaces:
# make splits the list of makefiles at them; then make.py is looked for in the current folder)
MAKE_PY := $(if $(word 2,$(MAKEFILE_LIST)),make.py,$(dir $(lastword $(MAKEFILE_LIST)))make.py)

TARGETS := report test submission watch params setup data figures html tex lint lock bench lab clean distclean help \
           check-report

.PHONY: $(TARGETS)
.DEFAULT_GOAL := help

$(TARGETS):
	@"$(PYTHON)" "$(MAKE_PY)" $@
