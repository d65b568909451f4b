"""What every part of the build shares: its error, its voice, a file's digest. Standard library only."""

from __future__ import annotations

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


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
