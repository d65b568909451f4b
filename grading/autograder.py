"""Gradescope's autograder: `make autograder` writes autograder.zip (setup.sh, run_autograder, and what grading
needs of this source, the hidden checks with it); Gradescope unpacks it into /autograder/source, runs setup.sh once
and run_autograder for each submission, which arrives in /autograder/submission and is graded here into
/autograder/results/results.json. AUTOGRADER_ROOT names another folder standing in for /autograder (a trial here).

    python -m grading.autograder          # what run_autograder runs
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
import zipfile
from pathlib import Path

from grading.grade import grade, table
from grading.hidden import mnist_here
from support.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# what grading needs of the source: its modules (the reference's training for the hidden checks), the lock, grading/
PARTS = ["*.py", "support/**/*.py", "grading/*.py", "tools/__init__.py", "tools/regions.py", "pyproject.toml",
         "requirements.lock", "requirements.txt"]

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, as it builds the autograder's image (Ubuntu): Python >= 3.11, the locked
# packages in source/.venv, and MNIST, verified. AUTOGRADER_ROOT stands in for /autograder in a trial elsewhere.
set -euo pipefail
cd "${AUTOGRADER_ROOT:-/autograder}/source"
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python=$(command -v "$candidate"); break
  fi
done
if [[ -z $python ]]; then
  apt-get update && apt-get install -y python3.11 python3.11-venv
  python=$(command -v python3.11)
fi
if ! "$python" -m venv --clear .venv; then  # Debian and Ubuntu ship venv's pip apart: python3.X-venv
  version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  apt-get update && { apt-get install -y "python$version-venv" || apt-get install -y python3-venv; }
  "$python" -m venv --clear .venv
fi
.venv/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
.venv/bin/python -c 'from support import fetch; fetch.ensure("mnist")'
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission: /autograder/submission in, /autograder/results/results.json out.
# AUTOGRADER_ROOT stands in for /autograder; AUTOGRADER_PYTHON for source/.venv's Python (a trial here).
root="${AUTOGRADER_ROOT:-/autograder}"
cd "$root/source" || exit 1
exec "${AUTOGRADER_PYTHON:-.venv/bin/python}" -m grading.autograder
"""


def files() -> list[str]:
    return sorted({p.relative_to(ROOT).as_posix() for pattern in PARTS for p in ROOT.glob(pattern) if p.is_file()})


def write_zip(out: Path) -> Path:
    """autograder.zip: setup.sh and run_autograder at its root (executable), beside the source's parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (("setup.sh", SETUP), ("run_autograder", RUN)):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
        for name in files():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16  # readable by all, as unzip leaves it
            archive.writestr(info, (ROOT / name).read_bytes(), zipfile.ZIP_DEFLATED)
    atomic_write(out, buffer.getvalue())
    return out


def main() -> int:
    """Grade /autograder/submission into /autograder/results/results.json (or under AUTOGRADER_ROOT)."""
    root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    results = root / "results" / "results.json"
    official = mnist_here()
    note = "" if official else ("the hidden checks of the official numbers are left out: MNIST is not in the "
                                "autograder's cache (setup.sh fetches it)")
    try:
        found = grade(root / "submission", root / "graded" / "submission", official=official, note=note)
        atomic_write(results, (root / "graded" / "submission" / "results.json").read_bytes())
    except Exception:  # whatever went wrong, Gradescope shows a results file that says it
        text = traceback.format_exc()
        atomic_write(results, json.dumps({"score": 0, "output": f"The autograder failed:\n{text}",
                                          "output_format": "text", "tests": []}, indent=1).encode())
        print(text, file=sys.stderr)
        return 1
    try:
        print(table(found), flush=True)  # the autograder's log: the results are written whatever becomes of it
    except OSError:  # the log is gone (a closed pipe): nothing more goes to it, at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
