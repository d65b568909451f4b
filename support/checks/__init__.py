"""`make check`: the checks of a student's code, task by task, in seconds and without data.

Each check calls one function the student writes (utils.py, trainer.py) on small inputs drawn from a seed, with the
harness standing in for every other function (so a mistake costs the check of its own task only), and judges what
came back against the assignment's definitions: centred differences of the mean cross-entropy for a gradient, a
direct count for an accuracy, the course's test vectors for early stopping. A check that fails says what kind of
mistake it looks like, in plain words, and where: the function, its file and a line inside it (where it raised, or
the last line it ran). The course's own self-checks (the `__main__` of its starter files for 2a and 3a) are among
them, on synthetic data. Each check is a `probe` (runs the student's code, returns plain data) and a `judge` (reads
that data): `make grade` runs the probes in the student's own process and judges in its own (grading/).

    python -m support.checks [--task 2a] [--json]     # make check [TASK=2a]; in a notebook: check("2a")
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import linecache
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from support.blanks import unwritten
from support.checks import core
from support.checks import functions as fn
from support.checks import training as tr
from support.checks.core import (
    DONE,
    FAILING,
    NOT_STARTED,
    ROOT,
    SEED,
    STUDENT_MODULES,
    Check,
    K,
    Problem,
    Result,
    function_in,
    plain,
)

# Every check, in the order of the tasks: its name, task, the function it calls ("module:qualified name"), its
# inputs (from a seed), probe and judge; course=True for the course's own self-checks
CHECKS = [
    Check("pre_process_images", "2a", "utils:pre_process_images", lambda r: {"X": core.images(r)},
          fn.probe_pre_process, fn.judge_pre_process),
    Check("course: images in [-1, 1], 785 columns", "2a", "utils:pre_process_images",
          lambda r: {"X": core.images(r)}, fn.probe_course_pixels, fn.judge_course_pixels, course=True),
    Check("sigmoid", "2a", "utils:sigmoid", fn.sigmoid_inputs, fn.probe_sigmoid, fn.judge_sigmoid),
    Check("forward (binary)", "2a", "utils:LinearModel.forward",
          lambda r: {"X": core.inputs_matrix(r), "w": core.weights(r, 1)}, fn.probe_forward, fn.judge_forward),
    Check("course: outputs 0.5 at zero weights", "2a", "utils:LinearModel.forward",
          lambda r: {"X": core.inputs_matrix(r)}, fn.probe_course_forward, fn.judge_course_forward, course=True),
    Check("cross_entropy_loss (binary)", "2a", "utils:cross_entropy_loss", fn.loss_inputs(1), fn.probe_loss,
          fn.judge_loss),
    Check("gradient (binary)", "2a", "utils:BinaryModel.loss_gradient", core.gradient_inputs(1),
          fn.probe_gradient("BinaryModel"), fn.judge_gradient),
    Check("course: gradient approximation test", "2a", "utils:LinearModel.backward", tr.course_gradient_inputs,
          tr.probe_course_gradient, tr.judge_course_gradient, course=True),
    Check("train_step", "2b", "trainer:BaseTrainer.train_step", tr.step_inputs, tr.probe_train_step,
          tr.judge_train_step),
    Check("accuracy (binary)", "2c", "utils:accuracy", fn.accuracy_inputs(1), fn.probe_accuracy, fn.judge_accuracy),
    Check("should_early_stop", "2d", "trainer:should_early_stop", lambda r: {}, tr.probe_early_stop,
          tr.judge_early_stop),
    Check("shuffling", "2e", "utils:batch_indices", tr.shuffle_inputs, tr.probe_shuffle, tr.judge_shuffle),
    Check("one_hot_encode", "3a", "utils:one_hot_encode", lambda r: {"labels": r.permutation(K)[:7, None]},
          fn.probe_one_hot, fn.judge_one_hot),
    Check("softmax", "3a", "utils:softmax", fn.softmax_inputs, fn.probe_softmax, fn.judge_softmax),
    Check("course: outputs 1/10 at zero weights", "3a", "utils:softmax", lambda r: {}, fn.probe_course_softmax,
          fn.judge_course_softmax, course=True),
    Check("cross_entropy_loss (one-hot)", "3a", "utils:cross_entropy_loss", fn.loss_inputs(K), fn.probe_loss,
          fn.judge_loss),
    Check("gradient (softmax)", "3a", "utils:SoftmaxModel.loss_gradient", core.gradient_inputs(K),
          fn.probe_gradient("SoftmaxModel"), fn.judge_gradient),
    Check("accuracy (one-hot)", "3c", "utils:accuracy", fn.accuracy_inputs(K), fn.probe_accuracy, fn.judge_accuracy),
    Check("L2 term in backward", "4a", "utils:LinearModel.backward", fn.l2_inputs, fn.probe_l2, fn.judge_l2),
]
BY_NAME = {check.name: check for check in CHECKS}
TASKS = list(dict.fromkeys(check.task for check in CHECKS))


def student_modules() -> dict:
    return {name: importlib.import_module(name) for name in STUDENT_MODULES}


def _files(modules: dict) -> dict[str, str]:
    """{absolute file: its name relative to the project} of the student's modules (that have a file)."""
    found = {}
    for module in modules.values():
        try:
            path = Path(inspect.getsourcefile(module) or "?").resolve()
        except TypeError:  # a module made in memory
            continue
        found[str(path)] = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    return found


class LineTracer:
    """The last line run inside one function (its code object), while it is on."""

    def __init__(self, code):
        self.code, self.lines = code, []

    def __enter__(self):
        self.previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(self.previous)

    def where(self) -> dict:
        """{"line": the last line run that computes (not a bare `return name`), "first_line": the first line run}."""
        computing = [n for n in self.lines
                     if not re.fullmatch(r"return\s+[\w.]+", linecache.getline(self.code.co_filename, n).strip())]
        return {"line": (computing or self.lines or [None])[-1], "first_line": (self.lines or [None])[0]}

    def _global(self, frame, event, arg):
        return self._local if frame.f_code is self.code else None

    def _local(self, frame, event, arg):
        if event == "line" and frame.f_lineno not in self.lines[-1:]:
            self.lines.append(frame.f_lineno)
        return self._local


def _code_of(function):
    function = inspect.unwrap(function.fget if isinstance(function, property) else function)
    return getattr(function, "__code__", None)


def probe(check: Check, modules: dict, seed: int = SEED) -> dict:
    """Run one check's probe on the student's code: {"data": ...} or {"blank": ...} or {"error": ...}, with where
    (file, line) it raised or the last line it ran in the function checked. Plain data, for a judge anywhere."""
    files = _files(modules)
    try:
        function = function_in(modules, check.function)
    except AttributeError as exc:
        return {"error": f"{check.function.split(':')[1]} is missing: {exc}", "file": "", "line": None}
    code = _code_of(function)
    inputs = check.inputs(np.random.default_rng(seed))
    tracer = LineTracer(code) if code is not None else None
    try:
        with np.errstate(all="ignore"), (tracer or _Nothing()):
            data = check.probe(modules, inputs)
        where = {"file": files.get(str(Path(code.co_filename).resolve()), ""), **tracer.where()} if code else {}
        return {"data": plain(data), **where}
    except Exception as exc:  # the student's code may raise anything: that is what the check reports
        blank = unwritten(exc)
        if blank is not None:
            return {"blank": {"task": blank.task, "function": blank.function}, "file": blank.file,
                    "line": blank.line}
        file, line, name = _student_frame(exc, files)
        return {"error": f"{type(exc).__name__}: {exc}"[:400], "file": file, "line": line, "in": name}


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _student_frame(exc: BaseException, files: dict) -> tuple[str, int | None, str]:
    """(file, line, function) of the innermost frame of the traceback in the student's files."""
    found = ("", None, "")
    tb = exc.__traceback__
    while tb is not None:
        name = files.get(str(Path(tb.tb_frame.f_code.co_filename).resolve()))
        if name:
            found = (name, tb.tb_lineno, tb.tb_frame.f_code.co_qualname)
        tb = tb.tb_next
    return found


def judge(check: Check, probed: dict, seed: int = SEED) -> Result:
    """The Result of a check from its probe's data (which may come from another process)."""
    function = check.function.split(":")[1]
    where = {"file": probed.get("file") or "", "line": probed.get("line")}
    if "blank" in probed:
        blank = probed["blank"]
        own = blank.get("function") == function
        return Result(check.name, check.task, NOT_STARTED, blank.get("function", function), **where, kind="blank",
                      message="not written yet" if own else f"needs {blank.get('function')} (Task "
                                                            f"{blank.get('task')}), not written yet")
    if "error" in probed:
        inside = probed.get("in") or function
        return Result(check.name, check.task, FAILING, inside, **where, kind="raises",
                      message=f"raises {probed['error']}")
    inputs = check.inputs(np.random.default_rng(seed))
    try:
        with np.errstate(all="ignore"):
            problem = check.judge(inputs, probed.get("data") if isinstance(probed.get("data"), dict) else {})
    except Exception as exc:  # data of an unexpected shape, from a hand-in: a failing check, not a crash
        problem = Problem("values", f"returned something the check cannot read ({type(exc).__name__}: {exc})")
    if problem is None:
        return Result(check.name, check.task, DONE, function, **where)
    if problem.kind in FIRST_LINE_KINDS and probed.get("first_line"):
        where["line"] = probed["first_line"]  # where the value is computed, more likely than where it is returned
    return Result(check.name, check.task, FAILING, function, **where, kind=problem.kind, message=problem.message)


FIRST_LINE_KINDS = {"sign"}  # a flipped sign is where the value is first computed; the rest, the last such line


def selected(task: str | None) -> list[Check]:
    """The checks of a task ("2a"), of a task's parts ("2": 2a to 2e), or all (None); ValueError for no such task."""
    if not task:
        return list(CHECKS)
    chosen = [c for c in CHECKS if c.task == task or (len(task) == 1 and c.task.startswith(task))]
    if not chosen:
        raise ValueError(f"no checks for task {task!r}: the tasks with code to check are {', '.join(TASKS)}")
    return chosen


def import_failure(exc: BaseException) -> dict:
    """A probe's answer for every check when the student's modules do not import: the error and where it was raised."""
    file, line = "", None
    tb = exc.__traceback__
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename).resolve()
        if path.is_relative_to(ROOT) and path.parent == ROOT:
            file, line = path.name, tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename:
        file, line = Path(exc.filename).name, exc.lineno
    return {"error": f"{type(exc).__name__}: {exc}"[:400] + " (when the module is imported)", "file": file,
            "line": line}


def run(task: str | None = None, seed: int = SEED) -> list[Result]:
    """Every chosen check, probed and judged here, on the student's modules as they are imported."""
    try:
        modules = student_modules()
    except Exception as exc:  # a syntax error, a failing import: every check fails with it
        failure = import_failure(exc)
        return [judge(check, failure, seed) for check in selected(task)]
    results = []
    for check in selected(task):
        start = time.perf_counter()
        result = judge(check, probe(check, modules, seed), seed)
        result.seconds = time.perf_counter() - start
        results.append(result)
    return results


def task_status(results: list[Result]) -> dict[str, str]:
    """{task: failing if a check fails, else not started if one meets a blank, else done}."""
    status = {}
    for result in results:
        now = status.get(result.task, DONE)
        if result.status == FAILING or now == FAILING:
            status[result.task] = FAILING
        elif result.status == NOT_STARTED or now == NOT_STARTED:
            status[result.task] = NOT_STARTED
        else:
            status[result.task] = DONE
    return status


def table(results: list[Result]) -> str:
    """The tasks, each done, not started or failing, and under a failing one each failing check: its function, file
    and line, and what kind of mistake it looks like."""
    status = task_status(results)
    lines = []
    for task, state in status.items():
        own = [r for r in results if r.task == task]
        passed = sum(r.status == DONE for r in own)
        lines.append(f"Task {task}  {state:<11}  {passed} of {len(own)} checks pass")
        for r in own:
            if r.status == FAILING:
                lines.append(f"    {r.check}: {r.function}{f' ({r.where})' if r.where else ''}: {r.message}")
            elif r.status == NOT_STARTED and state == NOT_STARTED and r.message != "not written yet":
                lines.append(f"    {r.check}: {r.message}")
        if state == NOT_STARTED:
            blanks = sorted({(r.function, r.where) for r in own if r.status == NOT_STARTED and r.kind == "blank"
                             and r.message == "not written yet"})
            if blanks:
                lines.append("    not written yet: " + ", ".join(f"{f} ({w})" for f, w in blanks))
    counts = {s: sum(v == s for v in status.values()) for s in (DONE, NOT_STARTED, FAILING)}
    lines.append(f"{counts[DONE]} done, {counts[NOT_STARTED]} not started, {counts[FAILING]} failing "
                 f"({sum(r.seconds for r in results):.1f} s)")
    return "\n".join(lines)


class Checked:
    """What check() gives a notebook: the table, as text (and HTML in JupyterLab)."""

    def __init__(self, results: list[Result]):
        self.results, self.status = results, task_status(results)

    def __repr__(self) -> str:
        return table(self.results)

    def _repr_html_(self) -> str:
        import html  # only for JupyterLab's table

        colour = {DONE: "#2e7d32", NOT_STARTED: "#757575", FAILING: "#c62828"}
        rows = []
        for task, state in self.status.items():
            details = "<br>".join(html.escape(f"{r.check}: {r.function} ({r.where}): {r.message}")
                                  for r in self.results if r.task == task and r.status == FAILING)
            rows.append(f"<tr><td>Task {task}</td><td style='color:{colour[state]}'><b>{state}</b></td>"
                        f"<td style='text-align:left'>{details}</td></tr>")
        return f"<table>{''.join(rows)}</table>"


def check(task: str | None = None) -> Checked:
    """In a notebook: check("2a") (or check("2"), check()) shows each task's status and what looks wrong, for the
    code as the files hold it now (the checks run in a process of their own: an edit counts without a restart)."""
    selected(task)  # ValueError for no such task, here
    done = subprocess.run([sys.executable, "-m", "support.checks", "--json", *(["--task", task] if task else [])],
                          cwd=ROOT, capture_output=True, text=True)
    try:
        return Checked([Result(**entry) for entry in json.loads(done.stdout)])
    except ValueError:
        raise RuntimeError(f"the checks could not run:\n{done.stderr[-2000:]}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.checks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default=None, help="2a for one task, 2 for all of Task 2")
    parser.add_argument("--json", action="store_true", help="the results as JSON")
    args = parser.parse_args(argv)
    try:
        results = run(args.task)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps([asdict(r) for r in results], indent=1) if args.json else table(results))
    return 1 if any(r.status == FAILING for r in results) else 0
