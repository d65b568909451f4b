"""`make check`: the checks of a student's code, task by task, in seconds and without data.

Each check calls one function the student writes (utils.py, trainer.py) on small inputs drawn from a seed, with the
harness standing in for every other function (so a mistake costs the check of its own task only), and judges what
came back against the assignment's definitions: centred differences of the mean cross-entropy for a gradient, a
direct count for an accuracy, the course's test vectors for early stopping. A check that fails says what kind of
mistake it looks like, in plain words, and where: the function, its file and a line inside it (where it raised, or
the last line it ran). The course's own self-checks (the `__main__` of its starter files for 2a and 3a) are among
them, on synthetic data. Each check is a probe (support/probes.py: runs the student's code, returns plain data) and
a judge (support/judges.py: reads that data); `make grade` runs the probes in the hand-in's own process and judges
in its own.

    python -m support.checks [--task 2a] [--json]     # make check [TASK=2a]; in a notebook: check("2a")
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np

from support import judges as j
from support import probes
from support.definitions import (
    DONE,
    FAILING,
    NOT_STARTED,
    ROOT,
    SEED,
    STUDENT_MODULES,
    Check,
    Problem,
    Result,
    gradient_inputs,
    images,
    inputs_matrix,
    weights,
)
from support.project import course_scripts_note

# Every check, in the order of the tasks: its name, task, the function it calls ("module:qualified name"), its points
# in make grade, its inputs (from a seed), probe (by name) and judge; course=True for the course's own self-checks
CHECKS = [
    Check("pre_process_images", "2a", "utils:pre_process_images", 1, lambda r: {"X": images(r)}, "pre_process",
          j.judge_pre_process),
    Check("course: images in [-1, 1], 785 columns", "2a", "utils:pre_process_images", 1, lambda r: {"X": images(r)},
          "pre_process", j.judge_course_pixels, course=True),
    Check("sigmoid", "2a", "utils:sigmoid", 1, j.sigmoid_inputs, "sigmoid", j.judge_sigmoid),
    Check("forward (binary)", "2a", "utils:LinearModel.forward", 1,
          lambda r: {"X": inputs_matrix(r), "w": weights(r, 1)}, "forward", j.judge_forward),
    Check("course: outputs 0.5 at zero weights", "2a", "utils:LinearModel.forward", 1,
          lambda r: {"X": inputs_matrix(r)}, "forward", j.judge_course_forward, course=True),
    Check("cross_entropy_loss (binary)", "2a", "utils:cross_entropy_loss", 1, j.loss_inputs(1), "loss", j.judge_loss),
    Check("gradient (binary)", "2a", "utils:BinaryModel.loss_gradient", 2, gradient_inputs(1), "gradient",
          j.judge_gradient),
    Check("course: gradient approximation test", "2a", "utils:LinearModel.backward", 1, j.course_gradient_inputs,
          "course_gradient", j.judge_course_gradient, course=True),
    Check("train_step", "2b", "trainer:BaseTrainer.train_step", 2, j.step_inputs, "train_step", j.judge_train_step),
    Check("accuracy (binary)", "2c", "utils:accuracy", 1, j.accuracy_inputs(1), "accuracy", j.judge_accuracy),
    Check("should_early_stop", "2d", "trainer:should_early_stop", 2, j.early_stop_inputs, "early_stop",
          j.judge_early_stop),
    Check("shuffling", "2e", "utils:batch_indices", 1, j.shuffle_inputs, "shuffle", j.judge_shuffle),
    Check("one_hot_encode", "3a", "utils:one_hot_encode", 1, lambda r: {"labels": r.permutation(10)[:7, None],
                                                                        "classes": 10}, "one_hot", j.judge_one_hot),
    Check("softmax", "3a", "utils:softmax", 1, j.softmax_inputs, "softmax", j.judge_softmax),
    Check("course: outputs 1/10 at zero weights", "3a", "utils:softmax", 1, j.course_softmax_inputs, "softmax",
          j.judge_course_softmax, course=True),
    Check("cross_entropy_loss (one-hot)", "3a", "utils:cross_entropy_loss", 1, j.loss_inputs(10), "loss",
          j.judge_loss),
    Check("gradient (softmax)", "3a", "utils:SoftmaxModel.loss_gradient", 2, gradient_inputs(10), "gradient",
          j.judge_gradient),
    Check("accuracy (one-hot)", "3c", "utils:accuracy", 1, j.accuracy_inputs(10), "accuracy", j.judge_accuracy),
    Check("L2 term in backward", "4a", "utils:LinearModel.backward", 2, j.l2_inputs, "l2", j.judge_l2),
]
BY_NAME = {check.name: check for check in CHECKS}
TASKS = list(dict.fromkeys(check.task for check in CHECKS))
FIRST_LINE_KINDS = {"sign"}  # a flipped sign is where the value is first computed; the rest, the last such line


def student_modules() -> dict:
    return {name: importlib.import_module(name) for name in STUDENT_MODULES}


def inputs_of(check: Check, seed: int = SEED) -> dict:
    """The inputs a check's probe is given, as they arrive over the wire (so in-process runs the same path)."""
    return probes.decode(json.loads(json.dumps(probes.encode(check.inputs(np.random.default_rng(seed))))))


def judge(check: Check, probed: dict, inputs: dict) -> Result:
    """The Result of a check from its probe's answer (which may come from another process) and the inputs it had."""
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


def selected(task: str | None) -> list[Check]:
    """The checks of a task ("2a"), of a task's parts ("2": 2a to 2e), or all (None); ValueError for no such task."""
    if not task:
        return list(CHECKS)
    task = task.strip().lower()
    chosen = [c for c in CHECKS if c.task == task or (len(task) == 1 and c.task.startswith(task))]
    if not chosen:
        raise ValueError(f"no checks for task {task!r}: the tasks with code to check are {', '.join(TASKS)}")
    return chosen


def run(task: str | None = None, seed: int = SEED, modules: dict | None = None) -> list[Result]:
    """Every chosen check, probed and judged here, on the student's modules (imported, unless given)."""
    try:
        modules = modules or student_modules()
    except Exception as exc:  # a syntax error, a failing import: every check fails with it
        failure = probes.import_failure(exc, ROOT)
        return [judge(check, failure, {}) for check in selected(task)]
    results = []
    for check in selected(task):
        start = time.perf_counter()
        inputs = inputs_of(check, seed)
        result = judge(check, probes.answer(check.probe, check.function, modules, inputs, ROOT), inputs)
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
        if state != DONE:
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
    if course_scripts_note() and not args.json:
        print(course_scripts_note())
    return 1 if any(r.status == FAILING for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
