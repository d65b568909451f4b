"""The build's targets, run by make.py inside .venv: `run(["report"], variables)` and the others of TARGETS.

Each step compares the fingerprint of what it would make with the one recorded in its output; it runs when they
differ. It works in a staging folder (build/.staging/) and its outputs appear by rename once complete and
checked. One build at a time per build folder (filelock). Where each step lives: tools/tasks.py (data, task
notebooks), tools/report.py (the executed report), tools/pdf.py (PDF and HTML), tools/handin.py (the hand-in).
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

from experiments import TASK_CONFIGS
from support.project import JUPYTER_CONFIG, WATCH, files
from support.sources import NotebookError
from tools.common import ROOT, STOP_SIGNALS, BuildError, file_sha256, os_error, say
from tools.context import Build, context
from tools.handin import write_handin
from tools.pdf import INSTALL_TEX, pandoc_env, step_html, step_pdf, step_tex
from tools.processes import STOP, build_lock, python
from tools.report import ResultsChanged, start_report_run, step_report
from tools.report_checks import target_check_report  # noqa: F401 (a target: function_of finds it by its name)
from tools.tasks import stale_tasks, step_checks, step_data, step_figures


def figures_and_report(build: Build, warm_up: str | None = None) -> Path:
    """The task notebooks, then the report. When one task notebook is left running (a core is free), the report's
    runner starts if the report will run, and the module `warm_up` of the next step is imported in a thread if the
    report changes: both are ready when the report's turn comes."""
    step_checks(build)
    step_data(build)
    stale = stale_tasks(build)
    ahead = None

    def start_next() -> None:
        nonlocal ahead
        ahead, changes = start_report_run(build, stale)
        if changes and warm_up:
            threading.Thread(target=importlib.import_module, args=(warm_up,)).start()

    try:
        keys = step_figures(build, stale, one_left=start_next)
    except BaseException:
        if ahead is not None:
            ahead.cancel()
        raise
    try:
        return step_report(build, keys, ahead)
    except ResultsChanged as exc:  # a run from Jupyter replaced results between the tasks and the report
        say(f"{exc}: so this build runs again the task notebooks whose results are not its own, then the report")
    try:
        return step_report(build, step_figures(build))
    except ResultsChanged as exc:
        raise BuildError(f"results keep changing while this build runs, lastly {exc}: let the task notebook running "
                         "in Jupyter finish, then run make report again. No PDF was made of them.") from None


def target_report(build: Build) -> None:
    with build_lock(build):
        started = time.monotonic()  # after a wait for another build
        step_pdf(build, figures_and_report(build, warm_up="nbconvert"))
    print(f"report: {build.pdf} ({time.monotonic() - started:.0f} s)")


def target_submission(build: Build) -> None:
    """The course's two files: the PDF brought up to date, and the code it was built from as assignment_code.zip."""
    target_report(build)
    write_handin(build)


def target_student(build: Build) -> None:
    from tools.student import make_student  # the instructor's target: its module only when asked

    make_student()


def _instructor():
    """grading/'s commands: the instructor's (tools/cli.py refuses their targets in the student version, which has
    no grading/)."""
    from grading import commands  # the instructor's targets: only when one is asked for

    return commands


def target_grade(build: Build) -> None:
    _instructor().grade_command(build.variables)


def target_autograder(build: Build) -> None:
    _instructor().autograder_command(build.variables)


def target_release(build: Build) -> None:
    _instructor().release_command(build.variables)


def target_check(build: Build) -> None:
    task = build.variables["TASK"]
    passthrough(python("-m", "support.checks", *(["--task", task] if task else [])))


def target_html(build: Build) -> None:
    with build_lock(build):
        step_html(build, figures_and_report(build, warm_up="nbconvert"))
    print(f"html: {build.html}")


def target_watch(build: Build) -> None:
    """Rebuild the PDF whenever a notebook or a module is saved with new content; Ctrl-C stops. Each rebuild reads
    the parameters again (a parameters cell may have changed); a failed one is said in one line, and watching goes
    on."""
    seen = None
    print(f"watching the notebooks and modules of {ROOT}; Ctrl-C stops")
    while True:
        now = {name: _digest(ROOT / name) for name in files(WATCH)}
        if now != seen:
            if seen is not None:
                print("changed: " + ", ".join(sorted(n for n in now if now.get(n) != seen.get(n))), flush=True)
            try:
                target_report(context(build.variables))
            except (BuildError, NotebookError) as exc:
                say(f"error: {exc}\nwatching for the next save")
            seen = now
        time.sleep(1.0)


def _digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:  # gone between the listing and the read: a save by rename, caught half-way
        return None


def target_figures(build: Build) -> None:
    with build_lock(build):
        step_figures(build)
    print(f"figures: {build.dir / 'figures'}, results: {build.dir / 'results'}")


def target_tex(build: Build) -> None:
    if not step_tex(build):
        raise BuildError(f"xelatex is not ready: {INSTALL_TEX}")
    print("tex: xelatex and its styles are ready")


def passthrough(command: list[str], env: dict | None = None) -> None:
    code = subprocess.call(command, cwd=ROOT, env=env)
    if code:
        raise SystemExit(code)


def target_lab(build: Build) -> None:
    """JupyterLab on the project's environment, as a student meets it: LAB_ARGS passed on (--no-browser --port 8899),
    as root without a hand-written config, kernels over Unix sockets (no TCP port, no warning at each start), the
    wheel's pandoc on PATH and the project's export settings (support/jupyter/) for File > Save and Export."""
    args = shlex.split(build.variables["LAB_ARGS"])
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
        say("running as root: JupyterLab starts with --allow-root (it would refuse otherwise)")
        args.append("--allow-root")
    if os.name != "nt" and len(os.fsencode(jupyter_runtime_dir())) + 50 <= 103:  # a socket's path: 103 bytes on macOS
        args.append("--KernelManager.transport=ipc")
    env = pandoc_env()
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(JUPYTER_CONFIG), env.get("JUPYTER_CONFIG_PATH")]))
    lab = subprocess.Popen(python("-m", "jupyterlab", *args), cwd=ROOT, env=env)

    def stop(signum, frame) -> None:
        # Ctrl-C reached JupyterLab too (one process group): it asks whether to shut down, and this waits for its
        # answer. A kill or a closed terminal reached this process alone: JupyterLab is asked to shut down.
        if signum != signal.SIGINT:
            lab.terminate()

    previous = {name: signal.signal(getattr(signal, name), stop) for name in STOP_SIGNALS}
    try:
        code = lab.wait()
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
    if code not in (0, 130, -signal.SIGINT, -signal.SIGTERM):
        raise SystemExit(code)


# rfc3987-syntax (jsonschema's optional "iri" checker, pulled in by jupyter-events) builds a parser when imported:
# 1-1.5 s in every process that imports nbformat, so in each notebook run and PDF (python-jsonschema/jsonschema#1428).
UNLOCKED = ("--no-emit-package", "rfc3987-syntax", "--no-emit-package", "lark")


def target_setup(build: Build) -> None:
    print(f"setup: {sys.executable} has the locked packages")


def target_params(build: Build) -> None:
    for task, values in build.params.items():
        changed = TASK_CONFIGS[task](**values).changed()
        print(f"{task}: " + (", ".join(f"{k}={json.dumps(v)}" for k, v in changed.items()) or "the course's values"))


def target_data(build: Build) -> None:
    step_data(build)
    print(f"data: {build.dataset} verified")


def target_test(build: Build) -> None:
    """The unit tests (pyproject.toml leaves out those marked build)."""
    passthrough(python("-m", "pytest", *shlex.split(build.variables["PYTEST_ARGS"])))


def target_test_build(build: Build) -> None:
    """The tests that run whole builds, in a copy of the project (tests/build/)."""
    passthrough(python("-m", "pytest", "-m", "build", "tests/build", *shlex.split(build.variables["PYTEST_ARGS"])))


def target_lint(build: Build) -> None:
    passthrough(python("-m", "ruff", "check", "."))
    passthrough(python("-m", "tools.check_notebooks"))
    passthrough(python("-m", "tools.student", "lint"))


def target_lock(build: Build) -> None:
    passthrough(python("-m", "uv", "pip", "compile", "--universal", "--generate-hashes", "--python-version", "3.11",
                       "-q", "requirements.txt", "-o", "requirements.lock", *UNLOCKED))
    passthrough(python("-m", "tools.wheels"))  # a wheel for every platform served


def target_bench(build: Build) -> None:
    passthrough(python(str(ROOT / "bench" / "run.py"), *shlex.split(build.variables["BENCH_ARGS"])))


def function_of(name: str):
    """The function of a target named in tools/cli.py's TARGETS: target_<name>, a dash read as an underscore."""
    return globals()[f"target_{name.replace('-', '_')}"]


def run(targets: list[str], variables: dict[str, str]) -> int:
    build = context(variables)
    try:
        for target in targets:
            function_of(target)(build)
    except KeyboardInterrupt:
        STOP.set()
        builds_pdf = {"report", "submission", "watch", "release"} & set(targets)
        kept = f"; {build.pdf.name} is the last good one" if builds_pdf and build.pdf.exists() else ""
        say(f"interrupted: the steps that had finished are kept, nothing half-done is{kept}")
        return 130
    except OSError as exc:
        raise os_error(exc) from None
    except NotebookError as exc:
        raise BuildError(str(exc)) from None
    return 0

