"""The blanks of the student version: what `make student` writes where the source has a solution (tools/regions.py),
and where they are left. Standard library only.

A blank is `raise NotImplementedError("Task 2a: BinaryModel.loss_gradient is not written yet")`; running into one
is a `NotImplementedError` whose message says so (`unwritten`), which the checks count as "not started", the build as
a pending task, and the tests as a skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MESSAGE = re.compile(r"\ATask (?P<task>\d[a-z]): (?P<function>\S+) is not written yet\Z")
LINE = re.compile(r'raise NotImplementedError\("(?P<message>Task \d[a-z]: \S+ is not written yet)"\)')


def message(task: str, function: str) -> str:
    """What a blank says: 'Task 2a: BinaryModel.loss_gradient is not written yet'."""
    return f"Task {task}: {function} is not written yet"


@dataclass(frozen=True)
class Blank:
    task: str  # "2a"
    function: str  # "BinaryModel.loss_gradient"
    file: str  # its file, relative to the project
    line: int  # its raise, from 1

    def __str__(self) -> str:
        return f"{message(self.task, self.function)} ({self.file}:{self.line})"


def unwritten(exc: BaseException) -> Blank | None:
    """The blank an exception came from (the innermost frame that raised it), or None for any other exception."""
    if not isinstance(exc, NotImplementedError) or not exc.args:
        return None
    found = MESSAGE.match(str(exc.args[0]))
    if not found:
        return None
    frame, tb = None, exc.__traceback__
    while tb is not None:
        frame, tb = tb, tb.tb_next
    path = Path(frame.tb_frame.f_code.co_filename) if frame else Path("?")
    root = Path(__file__).resolve().parent.parent
    file = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return Blank(found["task"], found["function"], file, frame.tb_lineno if frame else 0)


def blanks(root: Path, names: list[str]) -> list[Blank]:
    """The blanks left in the files `names` (relative to `root`), in order."""
    found = []
    for name in names:
        path = root / name
        if not path.is_file():
            continue
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if match := LINE.search(text):
                task, function = MESSAGE.match(match["message"]).group("task", "function")
                found.append(Blank(task, function, name, number))
    return found
