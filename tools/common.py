"""What every part of the build shares: its error, its voice, a file's digest. Standard library only."""

from __future__ import annotations

import errno
import hashlib
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Ctrl-C, a closed terminal (SIGHUP) and a `kill` (SIGTERM) all stop the build the same way
STOP_SIGNALS = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]


class BuildError(RuntimeError):
    """A step failed; the message says which and what to do. The previous outputs are kept."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def os_error(exc: OSError) -> BuildError:
    """One line for a file that could not be read or written, naming it; for a read-only checkout, how to build
    elsewhere."""
    where = exc.filename or "a file"
    line = f"could not read or write {where}: {exc.strerror or exc}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and exc.filename and _in_checkout(exc.filename):
        line += (f". {ROOT} cannot be written (read-only, or another user's): copy it somewhere writable, or build "
                 "from it with PY=<a Python that has requirements.txt> BUILD_DIR=<folder> PDF=<file.pdf> "
                 "MNIST_DIR=<folder with MNIST> set to writable places")
    return BuildError(line + "; the last good outputs are kept")


def _in_checkout(filename) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(ROOT)
    except (OSError, ValueError):
        return False


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
