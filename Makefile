# TDT4265 assignment 1, reproduced. The front door: `make <target>` is `python make.py <target>`, the build itself
# (Windows, or no make: run `py make.py report` directly). `make help` lists the targets; make.py alone knows them.
# Written for GNU make 3.81 (macOS) and later: nothing but plain rules.

PYTHON ?= python3
# NAME=value on the command line (SEED=3, PARAMS="...") reaches make.py as an environment variable: make exports
# the variables given on its command line, as it does those it took from the environment.
# make.py beside this Makefile, also for `make -f "path/to/Makefile"` from another folder. The only makefile read is
# this one, so MAKEFILE_LIST is its path, spaces and all (make sees the words between them; the last one ends in
# Makefile)
MAKE_PY := $(patsubst %Makefile,%make.py,$(strip $(MAKEFILE_LIST)))
empty :=
space := $(empty) $(empty)

.DEFAULT_GOAL := help
# this file is not made by a rule (without this, the one below would be tried on it)
$(subst $(space),\$(space),$(strip $(MAKEFILE_LIST))): ;
# every target, even one named like a folder (data, bench): make.py says what it is
%: FORCE
	@"$(PYTHON)" "$(MAKE_PY)" $@
FORCE: ;
