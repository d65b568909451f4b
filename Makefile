# TDT4265 assignment 1, reproduced. The front door: every target is `python make.py <target>`, which is the
# build itself (Windows, or no make: run `py make.py report` directly). `make help` lists the targets.
# Written for GNU make 3.81 (macOS) and later: nothing but plain rules.

PYTHON ?= python3
export PARAMS SEED DATASET PDF_ENGINE AUTO_INSTALL PY BUILD_DIR PDF PYTEST_ARGS BENCH_ARGS

TARGETS := report test submission watch params setup data figures html tex lint lock bench lab clean distclean help \
           check-report

.PHONY: $(TARGETS)
.DEFAULT_GOAL := help

$(TARGETS):
	@"$(PYTHON)" make.py $@
