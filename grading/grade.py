"""`make grade SUBMISSION=path`: grade hand-ins (a hand-in zip holding report.pdf and assignment_code.zip, an
assignment_code.zip, or a folder; several with a glob), side by side on the cores there are.

Each hand-in's code runs in its own process (grading/sandbox.py), shut in, with a time limit per check and a memory
limit; the inputs of each check are drawn from a seed that process never sees, and what comes back is judged here,
by the checks of make check (support/checks.py) and the hidden ones (grading/hidden.py). Per hand-in: results.json in
Gradescope's format and results.txt, a table; for all, grades.csv. The report's prose is read by a person.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grading import hidden
from grading.runner import Ended, Sandbox
from support import probes
from support.checks import CHECKS, TASKS, judge
from support.definitions import DONE, FAILING, NOT_STARTED, Result
from support.fileio import atomic_write
from support.project import ROOT, instructor_only
from support.sources import project_modules
from tools.regions import regions

IMPORT_SECONDS = 30.0  # for the hand-in's modules to import
CHECK_SECONDS = 20.0  # for one check (the course's gradient test runs 1,570 forward passes)
HIDDEN_SECONDS = 300.0  # for one hidden check's training (the 4e runs take about 20 s on 2 cores)
MEMORY_BYTES = 2 << 30  # the hand-in's address space
CPU_SECONDS = 1200  # the hand-in's processor time, per process
MAX_UNPACKED = 200 << 20  # bytes a hand-in may unpack to
WRITTEN_ANSWERS = ("1a", "1b", "2e", "3d", "4a", "4b", "4d", "4e")  # the report's prose: read by a person


class HandInError(Exception):
    """A hand-in that cannot be graded at all (not a zip, no code): the message says what was received."""


@dataclass
class Graded:
    """One check's outcome with its points."""

    result: Result
    points: int
    score: int
    hidden: bool = False


@dataclass
class Grade:
    name: str
    source: str = ""  # the path it was graded from
    checks: list[Graded] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # what the hand-in's process did that the grader noticed
    pdf: str | None = None
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(g.score for g in self.checks)

    @property
    def max_score(self) -> int:
        return sum(g.points for g in self.checks)

    def by_task(self) -> dict[str, tuple[int, int]]:
        tasks: dict[str, list[int]] = {}
        for g in self.checks:
            tasks.setdefault(g.result.task, [0, 0])
            tasks[g.result.task][0] += g.score
            tasks[g.result.task][1] += g.points
        return {task: (score, most) for task, (score, most) in tasks.items()}


# ---------------------------------------------------------------- the hand-in, unpacked


def _extract(archive: zipfile.ZipFile, into: Path, budget: list[int]) -> None:
    """A zip's regular files into `into`: no absolute paths, no '..', no links, at most MAX_UNPACKED bytes in all."""
    for info in archive.infolist():
        name = Path(info.filename)
        if info.is_dir():
            continue
        if name.is_absolute() or ".." in name.parts or (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise HandInError(f"{info.filename}: a path outside the hand-in, or a link")
        budget[0] -= info.file_size
        if budget[0] < 0:
            raise HandInError(f"more than {MAX_UNPACKED >> 20} MB unpacked")
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(info))


def unpack(submission: Path, work: Path) -> tuple[Path, Path | None, list[str]]:
    """(the folder holding the hand-in's code, its report.pdf or None, what was done to read it), unpacked into `work`
    afresh. Taken as students hand in: a folder or zip of the code, or of report.pdf and assignment_code.zip; a folder
    holding one zip (Gradescope's upload of a zip); the code one folder down; without the course's own modules."""
    shutil.rmtree(work, ignore_errors=True)
    code = work / "code"
    code.mkdir(parents=True)
    budget, notes = [MAX_UNPACKED], []
    if submission.is_dir():
        zips = sorted(p for p in submission.iterdir() if p.suffix == ".zip" and p.is_file())
        if not (submission / "utils.py").exists() and not (submission / "assignment_code.zip").exists() \
                and len(zips) == 1:
            notes.append(f"the folder holds one zip, {zips[0].name}: graded from it")
            submission = zips[0]
    if submission.is_dir():
        inner = submission / "assignment_code.zip"
        if inner.is_file():
            with zipfile.ZipFile(inner) as archive:
                _extract(archive, code, budget)
        else:
            shutil.copytree(submission, code, dirs_exist_ok=True, symlinks=False,
                            ignore=shutil.ignore_patterns(".git", ".venv", "build", "data", "__pycache__"))
        pdf = next((p for p in sorted(submission.glob("*.pdf"))), None)
    else:
        try:
            outer = zipfile.ZipFile(submission)
        except (zipfile.BadZipFile, OSError) as exc:
            raise HandInError(f"{submission} is not a zip or a folder ({exc})") from None
        with outer:
            names = outer.namelist()
            inner = next((n for n in names if Path(n).name == "assignment_code.zip"), None)
            if inner is not None:
                with zipfile.ZipFile(io.BytesIO(outer.read(inner))) as archive:
                    _extract(archive, code, budget)
            else:
                _extract(outer, code, budget)
            pdf_name = next((n for n in names if n.endswith(".pdf")), None)
            if pdf_name is not None:
                atomic_write(work / "report.pdf", outer.read(pdf_name))
        pdf = work / "report.pdf" if (work / "report.pdf").exists() else None
    if not (code / "utils.py").is_file():
        below = [p.parent for p in code.glob("*/utils.py")]
        if len(below) == 1:  # the code zipped with its folder: that folder is the code
            notes.append(f"the code is in its folder {below[0].name}/: graded from there")
            code = below[0]
    if not (code / "utils.py").is_file():
        found = sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file())[:10]
        raise HandInError(f"{submission}: no utils.py at the top of the code (found {', '.join(found) or 'nothing'})")
    for given in course_modules(code):  # the course's own modules, which a hand-in of the edited files leaves out
        shutil.copy2(ROOT / given, code / given)
        notes.append(f"{given} was not in the hand-in: the course's own copy was used")
    return code, pdf, notes


def course_modules(code: Path) -> list[str]:
    """The project's modules that the hand-in's utils.py and trainer.py import, that it lacks, that the student version
    holds and that hold nothing a student writes (no region): the course's own (mnist.py)."""
    wanted = project_modules(*(p for p in (code / "utils.py", code / "trainer.py") if p.is_file()), root=ROOT)
    return [name for path in wanted if not (code / (name := path.relative_to(ROOT).as_posix())).exists()
            and not instructor_only(name) and not regions(path.read_text(encoding="utf-8"), name)]


# ---------------------------------------------------------------- grading one hand-in


def failing(name: str, task: str, function: str, message: str, kind: str = "process") -> Result:
    return Result(name, task, FAILING, function, kind=kind, message=message)


def grade(submission: Path, work: Path, official: bool, seed: int | None = None, note: str = "") -> Grade:
    """Grade one hand-in into `work` (its code unpacked, results.json, results.txt): made beside it under a temporary
    name and renamed when done, so an interrupted grading leaves the last one whole."""
    started = time.monotonic()
    seed = secrets.randbits(32) if seed is None else seed
    found = Grade(work.name, str(submission))  # the hand-in's name, as its folder of results has it
    found.seen += [note] if note else []
    final, work = work, work.with_name(work.name + ".part")
    try:
        return _grade(submission, work, official, seed, found, started)
    finally:
        if (work / "results.json").exists():
            shutil.rmtree(final, ignore_errors=True)
            os.replace(work, final)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _grade(submission: Path, work: Path, official: bool, seed: int, found: Grade, started: float) -> Grade:
    try:
        code, pdf, notes = unpack(submission, work)
        found.seen += notes
    except HandInError as exc:
        found.seen.append(str(exc))
        found.checks = [Graded(failing(c.name, c.task, c.function.split(":")[1], str(exc), "hand-in"), c.points, 0)
                        for c in CHECKS]
        return _finish(found, work, started, seed)
    found.pdf = pdf.name if pdf else None
    box, dead = Sandbox(code, MEMORY_BYTES, CPU_SECONDS), None

    def start() -> str | None:
        """Start the hand-in's process; why it cannot serve, or None."""
        try:
            first = box.start(IMPORT_SECONDS)
        except Ended as exc:
            found.seen.append(f"its modules did not import: {exc}")
            return f"its modules did not import: {exc}"
        return None if first.get("import_failure") is None else first["import_failure"]

    try:
        dead = start()
        failure = dead if isinstance(dead, dict) else None
        for index, check in enumerate(CHECKS):
            inputs = check.inputs(np.random.default_rng([seed, index]))
            sent = probes.encode(inputs)
            if isinstance(dead, str):
                result = failing(check.name, check.task, check.function.split(":")[1], dead)
            elif failure is not None:
                result = judge(check, failure, probes.decode(sent))
            else:
                try:
                    answer, _ = box.ask({"id": index, "probe": check.probe, "function": check.function,
                                         "inputs": sent}, timeout=CHECK_SECONDS, doing=f"the check {check.name}")
                    result = judge(check, answer.get("answer") or {"error": answer.get("error", "no answer")},
                                   probes.decode(sent))
                except Ended as exc:
                    result = failing(check.name, check.task, check.function.split(":")[1],
                                     f"the hand-in's process: {exc}")
                    found.seen.append(f"{check.name}: {exc}")
                    box.stop()
                    dead = start()
                    failure = dead if isinstance(dead, dict) else None
            found.checks.append(Graded(result, check.points, check.points if result.status == DONE else 0))
        for check in hidden.HIDDEN if official else ():
            found.checks.append(_hidden(check, box, dead, failure))
            if dead is None and box.proc is None:  # it ended in that check: a fresh one for the next
                dead = start()
                failure = dead if isinstance(dead, dict) else None
    finally:
        found.seen += [f"refused: {what}" for what in box.refused]
        found.seen += [f"it printed: {''.join(box.output)[-600:].strip()}"] if box.output else []
        box.stop()
    return _finish(found, work, started, seed)


def _hidden(check: hidden.Hidden, box: Sandbox, dead, failure) -> Graded:
    function = check.function.split(":")[1]
    if dead is not None:
        why = dead if isinstance(dead, str) else failure.get("error", "its modules did not import")
        return Graded(failing(check.name, check.task, function, why), check.points, 0, hidden=True)
    hidden.DEADLINE[0] = time.monotonic() + HIDDEN_SECONDS
    try:
        passed, message = check.run(box)
    except hidden.HandInFailed as exc:
        box.stop()
        passed, message = False, str(exc)
    status = DONE if passed else NOT_STARTED if "is not written yet" in message else FAILING
    result = Result(check.name, check.task, status, function, kind="" if passed else "official", message=message)
    return Graded(result, check.points, check.points if passed else 0, hidden=True)


# ---------------------------------------------------------------- what a grade says


def table(found: Grade, hidden: bool = True) -> str:
    """The hand-in's grade as text: points per task, what failed and why (make check's words), who reads the rest;
    without the hidden checks unless `hidden` (what a student sees before the grades are published)."""
    shown = Grade(found.name, found.source, [g for g in found.checks if hidden or not g.hidden], found.seen,
                  found.pdf, found.seconds)
    lines = [f"{found.name} ({found.source}): {shown.score} of {shown.max_score} points ({found.seconds:.0f} s)"
             + ("" if hidden else ", hidden checks not shown")]
    for task, (score, most) in shown.by_task().items():
        lines.append(f"  Task {task}  {score:>2} of {most}")
        for g in shown.checks:
            if g.result.task == task and g.result.status != DONE:
                where = f" ({g.result.where})" if g.result.where else ""
                state = "not started" if g.result.status == NOT_STARTED else "failing"
                lines.append(f"      {state}: {g.result.check} [{g.points}]: {g.result.function}{where}: "
                             f"{g.result.message}")
    lines.append(f"  Read by a person: {found.pdf or 'no PDF in the hand-in'}: the answers of "
                 f"{', '.join(WRITTEN_ANSWERS)}, and the figures")
    lines += [f"  Seen: {what}" for what in found.seen]
    return "\n".join(lines)


def gradescope(found: Grade, seed: int) -> dict:
    """results.json as Gradescope's autograder specification has it: a test per check, its score and output."""
    tests = []
    for number, g in enumerate(found.checks, 1):
        r = g.result
        where = f" ({r.where})" if r.where else ""
        output = (f"passed{': ' + r.message if r.message else ''}" if r.status == DONE
                  else f"{r.status}: {r.function}{where}: {r.message}")
        tests.append({"name": f"Task {r.task}: {r.check}", "number": str(number), "score": g.score,
                      "max_score": g.points, "status": "passed" if r.status == DONE else "failed", "output": output,
                      "tags": [f"task {r.task}"], "visibility": "after_published" if g.hidden else "visible"})
    # no top-level score (Gradescope sums the tests'), and an output without the hidden checks: until the grades are
    # published a student sees only the visible checks
    return {"execution_time": round(found.seconds), "output": table(found, hidden=False), "output_format": "text",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"seed": seed, "seen": found.seen, "source": found.source, "score": found.score}}


def _finish(found: Grade, work: Path, started: float, seed: int) -> Grade:
    found.seconds = time.monotonic() - started
    atomic_write(work / "results.json", json.dumps(gradescope(found, seed), indent=1).encode())
    atomic_write(work / "results.txt", (table(found) + "\n").encode())
    return found


def _grade_here(args: tuple) -> Grade:
    submission, work, official, seed = args
    return grade(submission, work, official, seed)


def _worker_start() -> None:
    """A grading worker: Ctrl-C is the parent's to handle; the parent's SIGTERM ends the hand-in being graded, its
    process stopped and its half-made folder removed on the way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def names_of(submissions: list[Path]) -> dict[Path, str]:
    """A name for each hand-in, for its folder of results: its file's stem, or its folder's name; where two are alike
    (alice/assignment_code.zip, bob/assignment_code.zip), their folders' names before them, then a number."""
    def base(path: Path, parents: int) -> str:
        own = path.stem if path.is_file() else path.name
        return "-".join([*(p.name for p in reversed(path.parents[:parents]) if p.name), own][-1 - parents:]) \
            if parents else own

    names = {path: base(path, 0) for path in submissions}
    for parents in (1, 2):
        if len(set(names.values())) == len(names):
            break
        alike = {n for n in names.values() if list(names.values()).count(n) > 1}
        names = {path: base(path, parents) if name in alike else name for path, name in names.items()}
    seen: dict[str, int] = {}
    for path, name in names.items():
        seen[name] = seen.get(name, 0) + 1
        names[path] = name if seen[name] == 1 else f"{name}-{seen[name]}"
    return names


def grade_all(submissions: list[Path], out: Path, official: bool, seed: int | None = None,
              workers: int | None = None, said=None) -> list[Grade]:
    """Grade each hand-in (side by side on the cores there are) into out/<name>/, and write out/grades.csv;
    said(grade), if given, as each one is done."""
    names = names_of(submissions)
    jobs = [(path, out / names[path], official, seed) for path in submissions]
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    grades = {}
    try:
        if workers == 1:
            for job in jobs:
                grades[job[0]] = _grade_here(job)
                if said:
                    said(grades[job[0]])
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_start) as pool:
                futures = {pool.submit(_grade_here, job): job[0] for job in jobs}
                try:
                    for future in as_completed(futures):
                        grades[futures[future]] = future.result()
                        if said:
                            said(grades[futures[future]])
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    for worker in multiprocessing.active_children():
                        worker.terminate()
                    raise
    finally:  # interrupted too: the hand-ins graded so far
        write_grades(out, [grades[path] for path in submissions if path in grades])
    return [grades[path] for path in submissions]


CSV_HEADER = ["submission", "path", "total", "max", *(f"task {t}" for t in TASKS)]


def write_grades(out: Path, graded: list[Grade]) -> None:
    """out/grades.csv: a row per hand-in graded into `out`, this run's and those of earlier runs whose results are still
    there (a hand-in graded again replaces its row)."""
    names = {g.name for g in graded}
    rows = []
    try:
        with open(out / "grades.csv", newline="", encoding="utf-8") as earlier:
            old = list(csv.reader(earlier))
        if old and old[0] == CSV_HEADER:
            rows = [row for row in old[1:] if row and row[0] not in names and (out / row[0] / "results.json").exists()]
    except OSError:
        pass
    rows += [[g.name, g.source, g.score, g.max_score, *(g.by_task().get(t, (0, 0))[0] for t in TASKS)] for g in graded]
    text = io.StringIO()
    csv.writer(text).writerows([CSV_HEADER, *rows])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "grades.csv", text.getvalue().encode())
