"""One way to write a file: a temporary file in the same folder, then a rename, so an interrupted write never
leaves a file that looks complete and a failed one leaves the previous file in place."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` (folders created) through `.NAME.*.part` in the same folder and a rename.

    The file gets the mode any new file gets (0666 less the umask). An error names the file it was writing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk says so without naming the file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path


def write_file(path: str | Path, data: bytes | str) -> Path:
    """Write a working file (text as UTF-8) in place, no rename: for staging folders; an error names the file."""
    path = Path(path)
    try:
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path
