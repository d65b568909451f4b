"""A report that builds while the assignment is unfinished.

A task notebook leaves out a part whose code runs into a blank of the student version and lists its tasks in its
results file's "pending" ({"2b": "Task 2b: BaseTrainer.train_step is not written yet (trainer.py:105)"}); the report
asks for an answer where a cell still says so (tools/regions.py's ANSWER cells). `with_placeholders` gives the report
as it can run now: every section of a task whose code is pending (from its heading to the next heading) replaced by
one line saying what is missing, its heading kept, so that the PDF has every task's heading. A written-answer task
keeps its section: its answer cell, which asks for the answer, is the placeholder there.
"""

from __future__ import annotations

import re

from support.blanks import Blank, blanks
from support.project import REPORT_NEEDS
from support.results import ResultsError, read_results
from tools import regions
from tools.common import ROOT

STUDENT_FILES = ("utils.py", "trainer.py")  # the code a student writes: where a pending task's blanks are
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*$")
TASK = re.compile(r"\ATask (\d[a-z])\b")


def pending_code(results_dir, tasks) -> dict[str, str]:
    """{task: why} of every results file's "pending" ({} where a file is missing: the report says so itself)."""
    found = {}
    for name in tasks:
        try:
            found |= read_results(results_dir / f"{name}.json").get("pending", {})
        except ResultsError:
            continue
    return found


def answers_pending(book: dict) -> dict[str, str]:
    return {task: f"Task {task}: the answer is not written yet" for task in regions.pending_answers(book)}


def _headings(source: str) -> list[tuple[int, str]]:
    """(level, text) of each Markdown heading line of a cell."""
    return [(len(m[1]), m[2]) for line in source.splitlines() if (m := HEADING.match(line.strip()))]


def needs_of(heading: str) -> list[str]:
    """The tasks a section needs: its own ("Task 2b: ..."), or those pyproject.toml's report_needs names for it."""
    own = TASK.match(heading)
    return [own[1]] if own else list(REPORT_NEEDS.get(heading, []))


def described(task: str, why: str, left: list[Blank]) -> str:
    """What a pending task's placeholder says: the blanks of its own code, and what else it waits for."""
    own = [blank for blank in left if blank.task == task]
    if not own:
        return why
    text = f"Task {task}, not written yet: " + ", ".join(f"{b.function} ({b.file}:{b.line})" for b in own)
    return text if why.startswith(f"Task {task}:") else f"{text}; it waits for {why}"


def with_placeholders(book: dict, pending: dict[str, str], left: list[Blank] | None = None) -> dict:
    """The report with the section of each task in `pending` (and of each section that needs one) replaced by a line
    saying what is missing (`left`: the blanks of the student's code, found if not given); the rest as it is. No
    pending task: the report itself."""
    if not pending:
        return book
    left = blanks(ROOT, list(STUDENT_FILES)) if left is None else left
    cells, waiting = [], None  # waiting: why the section now being read is left out, None if it is kept
    for cell in book["cells"]:
        source = "".join(cell["source"])
        headings = _headings(source) if cell["cell_type"] == "markdown" else []
        if headings:
            missing = [task for task in needs_of(headings[-1][1]) if task in pending]
            waiting = described(missing[0], pending[missing[0]], left) if missing else None
            if waiting is not None:
                keep = "\n\n".join(f"{'#' * level} {text}" for level, text in headings)  # the headings alone
                cells.append({**cell, "source": keep})
                cells.append({"cell_type": "markdown", "id": f"{cell.get('id', 'cell')}-pending", "metadata": {},
                              "source": f"*Pending.* {waiting}."})
                continue
        if waiting is None:
            cells.append(cell)
    return {**book, "cells": cells}


def pending_summary(pending: dict[str, str], headings) -> str:
    """'partial report: 3 of 16 tasks pending (2b, 2c, 4a)', or '' when none is."""
    tasks = [h.removeprefix("Task ") for h in headings if h.removeprefix("Task ") in pending]
    if not tasks:
        return ""
    return f"partial report: {len(tasks)} of {len(headings)} tasks pending ({', '.join(tasks)})"
