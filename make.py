#!/usr/bin/env python3
"""The build: `python make.py <target> [NAME=value ...]`, the same as `make <target> NAME=value ...`.

Needs nothing but Python >= 3.11 on PATH (Windows: `py make.py report`): tools/cli.py makes .venv from the hashed
lock and runs the rest of the build (tools/targets.py) inside it. Written so that any Python parses this file and
is told what it needs.

What is stale is decided by content, not by timestamps: each results file records the fingerprint of what made
it (parameters, notebook code, modules, data, package versions; see support/results.py), the executed report
records the digests of the results it read, and the PDF's state file records the report's fingerprint and the
PDF's own digest. A step runs when what it would record differs from what is there, whoever wrote it. Every
step works in a staging folder and its outputs appear by rename once complete and checked, so an interrupted
or failed step leaves the previous outputs. One build at a time per build folder (a lock); a second waits.
"""
import sys

if sys.version_info < (3, 11):
    target = sys.argv[1] if len(sys.argv) > 1 and "=" not in sys.argv[1] else "report"
    sys.stderr.write("error: this build needs Python >= 3.11; {0} is {1}. Run it with a newer one (make {2} "
                     "PYTHON=python3.12, or py -3.12 make.py {2} on Windows).\n"
                     .format(sys.executable, sys.version.split()[0], target))
    sys.exit(2)

from tools.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
