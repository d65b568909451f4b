"""report.ipynb executed against the task notebooks' results, unless the executed report already is that; a
prose edit reuses the last run's outputs and replaces the Markdown only."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from support import handoff
from support.blanks import blanks
from support.fileio import write_file
from support.inline import expressions, store, stored
from support.project import HEADINGS, REPORT, TASKS, notebooks
from support.results import ResultsError, modules_digest, problem_of, read_results, sha256_json, versions
from support.sources import project_modules, read_notebook
from tools.common import ROOT, BuildError, file_sha256, say
from tools.context import Build
from tools.partial import STUDENT_FILES, answers_pending, described, pending_code, pending_summary, with_placeholders
from tools.processes import NotebookRun, publish, staging_dir, timed
from tools.tasks import expected_keys


class ResultsChanged(BuildError):
    """The report refused the results it read: not the ones this build made (a run from Jupyter wrote its own)."""


def read_source() -> dict:
    """report.ipynb as it is now: read once per step, so that what runs is what the fingerprints describe."""
    return read_notebook(ROOT / REPORT)


def runnable(build: Build, source: dict) -> tuple[dict, dict[str, str]]:
    """(the report as it runs against these results: the sections of tasks whose code is pending replaced by what is
    missing (tools/partial.py), {task: why} of every task pending, for code or a written answer)."""
    code = pending_code(build.dir / "results", TASKS)
    left = blanks(ROOT, list(STUDENT_FILES))
    described_code = {task: described(task, why, left) for task, why in code.items()}
    return with_placeholders(source, code, left), {**answers_pending(source), **described_code}


def report_fingerprints(build: Build, keys: dict[str, str], source: dict) -> dict[str, str]:
    """{"code": what the report's outputs depend on, "full": that and its prose (Markdown cells)}.

    code: the code cells of `source` (report.ipynb as read), the inline expressions of its Markdown, the results
    they read, the modules, the versions. An edit of the prose alone (its expressions the same) changes `full` but
    not `code`: the outputs and values of the last run are then reused and only the Markdown is new.
    """
    cells = [(c["cell_type"], "".join(c["source"])) for c in source["cells"]]
    code = sha256_json({
        "format": 4,  # of the executed report's build metadata (4: with the values of the Markdown's expressions)
        "code": [source for kind, source in cells if kind == "code"],
        "expressions": sorted({e for kind, text in cells if kind == "markdown" for e in expressions(text)}),
        "results": {task: read_results(build.dir / "results" / f"{task}.json")["content_sha256"] for task in keys},
        "modules": modules_digest(REPORT),
        "versions": versions(),
    })
    return {"code": code, "full": sha256_json({"code": code, "cells": cells})}


def content_digest(book: dict) -> str:
    """SHA-256 of an executed report's content: its cells with their outputs and its metadata, less the build's
    record and the cells' execution times."""
    cells = [{**cell, "metadata": {k: v for k, v in cell.get("metadata", {}).items() if k != "execution"}}
             for cell in book["cells"]]
    return sha256_json({"metadata": {k: v for k, v in book["metadata"].items() if k != "build"}, "cells": cells})


def read_sealed(notebook: Path) -> tuple[bytes, dict]:
    """(an executed report's bytes, the build metadata it carries if its content is still what the build wrote);
    the metadata is {} when there is none or it was altered (then the report runs again, and no PDF is made of it).
    Checked once per version of the file in a process."""
    try:
        data = notebook.read_bytes()
    except OSError:
        return b"", {}
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _SEALED:
        try:
            book = json.loads(data)
            build = book["metadata"]["build"]
            _SEALED[digest] = build if build.get("content_sha256") == content_digest(book) else {}
        except (ValueError, KeyError, TypeError, AttributeError):
            _SEALED[digest] = {}
    return data, _SEALED[digest]


_SEALED: dict[str, dict] = {}  # SHA-256 of an executed report's bytes -> the build metadata read_sealed found


def recorded(notebook: Path) -> dict:
    """The build metadata of a sealed executed report (read_sealed), {} when there is none or it was altered."""
    return read_sealed(notebook)[1]


def with_new_prose(executed: dict, source: dict) -> dict:
    """The executed report with the source's Markdown cells: its code cells (and their outputs) are the same, and so
    are its expressions, whose values it holds."""
    done = iter(c for c in executed["cells"] if c["cell_type"] == "code"
                and "injected-parameters" not in c.get("metadata", {}).get("tags", []))
    injected = [c for c in executed["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    values = {e: r for c in executed["cells"] if c["cell_type"] == "markdown" for e, r in stored(c).items()}
    cells = []
    for cell in source["cells"]:
        if cell["cell_type"] == "markdown":
            cell = json.loads(json.dumps(cell))
            store(cell, {e: values[e] for e in expressions("".join(cell["source"]))})
        cells.append(next(done) if cell["cell_type"] == "code" else cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cells += injected
    return {**executed, "cells": cells}


def report_change(build: Build, keys: dict[str, str], source: dict) -> tuple[str, dict[str, str]]:
    """(what the executed report needs against these results: "none", "prose" or "code", its fingerprints)."""
    fingerprints = report_fingerprints(build, keys, source)
    before = recorded(build.dir / "notebooks" / "report.ipynb")
    if before.get("fingerprint") == fingerprints["full"]:
        return "none", fingerprints
    return ("prose" if before.get("code") == fingerprints["code"] else "code"), fingerprints


def start_report_run(build: Build, stale: dict[str, str]) -> tuple[NotebookRun | None, bool]:
    """(the report's runner, whether the report changes). The runner is started now when the report will have to
    run (a task notebook is `stale`, or the report's code or results changed), so that its kernel starts while the
    task notebooks run; None when only its prose changed, or nothing."""
    keys = expected_keys(build)
    if not stale:
        try:
            change, _ = report_change(build, keys, runnable(build, read_source())[0])
        except ResultsError:
            return None, True
        if change != "code":
            return None, change == "prose"
    return report_run(build, keys), True


def report_run(build: Build, keys: dict[str, str]) -> NotebookRun:
    """The report's runner, its kernel told where the results are and which it asks for (support/handoff.py)."""
    env = {**os.environ, handoff.RESULTS_ENV: str(build.dir / "results"), handoff.KEYS_ENV: json.dumps(keys),
           handoff.PARAMETERS_ENV: json.dumps(build.params)}
    return NotebookRun(ROOT / REPORT, staging_dir(build, "report") / "report.ipynb", env=env)


def step_report(build: Build, keys: dict[str, str], ahead: NotebookRun | None = None) -> Path:
    """build/notebooks/report.ipynb executed against these results, unless it already is.

    When only the prose changed, the outputs of the last run are kept and the Markdown cells replaced. `ahead`:
    the report's runner started before (start_report_run), used if the report runs and stopped if not.
    """
    executed = build.dir / "notebooks" / "report.ipynb"
    original = read_source()
    source, pending = runnable(build, original)
    try:
        change, fingerprints = report_change(build, keys, source)
        if change == "none":
            say_pending(pending)
            return executed
        started = time.monotonic()
        if change == "prose":
            out = staging_dir(build, "report") / "report.ipynb"
            book = with_new_prose(json.loads(executed.read_text()), source)
            label = "report.ipynb (prose)"
        else:
            run = ahead or report_run(build, keys)
            ahead = None
            try:
                run.run({}, notebook=source)
            except BuildError as exc:
                if "ResultsError" in str(exc):  # the report refused what it read: written since the tasks ran
                    raise ResultsChanged(problem_of(str(exc).splitlines()[-1].partition("ResultsError: ")[2])) from None
                raise
            out = run.out
            book = json.loads(out.read_text())
            label = "report.ipynb"
    finally:
        if ahead is not None:
            ahead.cancel()
    for index, cell in enumerate(book["cells"]):  # a cell added by hand may lack one: nbformat warns at each read
        cell.setdefault("id", f"added-{index}")
    book["metadata"]["build"] = {"fingerprint": fingerprints["full"], "code": fingerprints["code"], "keys": keys,
                                 "sources": source_manifest(original), "pending": pending}
    book["metadata"]["build"]["content_sha256"] = content_digest(book)
    write_file(out, json.dumps(book, indent=1))
    publish(out, executed)
    timed(label, started)
    say_pending(pending)
    return executed


def say_pending(pending: dict[str, str]) -> None:
    summary = pending_summary(pending, HEADINGS)
    if summary:
        say(f"{summary}: the PDF shows what is missing where each would be")


def source_manifest(source: dict) -> dict[str, str]:
    """{file: digest of what counts in it} for every source the report's numbers and prose come from: a notebook's
    cell sources (not its outputs or metadata: a run in Jupyter changes nothing), a module's bytes; report.ipynb as
    the build read it (`source`)."""
    paths = [ROOT / name for name in notebooks()]
    return {p.relative_to(ROOT).as_posix(): counted(p, source if p.name == REPORT else None)
            for p in (*paths, *project_modules(*paths))}


def counted(path: Path, book: dict | None = None) -> str:
    """The digest of what counts in a source, as the fingerprints count it: a task notebook's code cells (not its
    outputs, metadata or Markdown), the report's cells and title (its prose is the PDF's), a module's bytes."""
    if path.suffix != ".ipynb":
        return file_sha256(path)
    book = book if book is not None else read_notebook(path)
    cells = [(c["cell_type"], "".join(c["source"])) for c in book["cells"]
             if path.name == REPORT or c["cell_type"] == "code"]
    return sha256_json({"title": book.get("metadata", {}).get("title"), "cells": cells})
