# TDT4265 assignment 1, reproduced. The front door: every target is `python make.py <target>`, which is the
# build itself (Windows, or no make: run `py make.py report` directly). `make help` lists the targets.
# Written for GNU make 3.81 (macOS) and later: nothing but plain rules.

PYTHON ?= python3
# NAME=value on the command line (SEED=3, PARAMS="...") reaches make.py as an environment variable: make exports
# the variables given on its command line, as it does those it took from the environment.
# make.py beside this Makefile, also for `make -f path/to/Makefile` from another folder (a path without spaces:
# make splits the list of makefiles at them; then make.py is looked for in the current folder)
MAKE_PY := $(if $(word 2,$(MAKEFILE_LIST)),make.py,$(dir $(lastword $(MAKEFILE_LIST)))make.py)

TARGETS := report test submission watch params setup data figures html tex lint lock bench lab clean distclean help \
           check-report

.PHONY: $(TARGETS)
.DEFAULT_GOAL := help

$(TARGETS):
	@"$(PYTHON)" "$(MAKE_PY)" $@
