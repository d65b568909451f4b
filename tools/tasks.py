"""The data and the task notebooks: each runs (all at once) when its results file does not carry the fingerprint
this build asks for, into the staging folder; its outputs are published when its results check out."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from support import fetch
from support.checks import DONE, FAILING, Result, table, task_status
from support.handoff import OUT_ENV, SHARED_ENV, TASK_ENV, WAIT_ENV
from support.project import TASK_SPECS, TASKS, course_scripts_note
from support.results import ResultsError, fingerprint, load_results, problem_of, read_results
from tools.common import ROOT, BuildError, say
from tools.context import Build
from tools.processes import STOP, apt_install, can_apt, publish, python, run_notebook, staging_dir, timed


def step_checks(build: Build) -> None:
    """The checks of the student's code (make check), before any training: BuildError with their table when one
    fails (unless CHECKS=no); blanks are fine: their tasks' sections are placeholders in a partial report."""
    if build.variables["CHECKS"] == "no":
        return
    started = time.monotonic()
    done = subprocess.run(python("-m", "support.checks", "--json"), cwd=ROOT, capture_output=True, text=True)
    try:
        results = [Result(**entry) for entry in json.loads(done.stdout)]
    except (ValueError, TypeError):
        raise BuildError(f"the checks could not run (exit {done.returncode}):\n{done.stderr[-3000:]}") from None
    if any(r.status == FAILING for r in results):
        raise BuildError(f"the checks of your code fail, so no report is built on it:\n{table(results)}\n"
                         "Fix what they say (`make check` runs them again), or build anyway with CHECKS=no")
    waiting = [task for task, status in task_status(results).items() if status != DONE]
    if waiting:
        timed(f"checks: {len(waiting)} tasks not started", started)
    if course_scripts_note():
        say(course_scripts_note())


def step_data(build: Build) -> None:
    """The data set in its cache, verified (the notebooks verify it again when they load it)."""
    started = time.monotonic()
    if build.dataset == "fashion-mnist" and not fetch.FASHION_DEBIAN_DIR.exists() and can_apt(build):
        with contextlib.suppress(BuildError):
            apt_install("dataset-fashion-mnist")
    if build.dataset == "synthetic":
        return
    try:
        cache, source = fetch.fetch(build.dataset)
    except fetch.MnistError as exc:
        raise BuildError(str(exc)) from None
    if not source.startswith("cache"):
        say(f"{build.dataset}: fetched from {source}, verified, cached in {cache}")
        timed("data", started)


def stale_reason(build: Build, task: str) -> str | None:
    """Why `task`'s results must be made again; None when they already carry this build's fingerprint."""
    try:
        load_results(task, results_dir=build.dir / "results", expected_key=fingerprint(task, build.params[task])["key"],
                     expected_parameters=build.params[task])
        return None
    except ResultsError as exc:
        return problem_of(str(exc)) if "missing" not in str(exc) else "no results yet"


def step_task(build: Build, task: str, reason: str, wait_for: Path | None = None) -> list[str]:
    """Run `task`.ipynb into the build, waiting for a shared run while the file `wait_for` exists; lines to print."""
    expected = fingerprint(task, build.params[task])
    started = time.monotonic()
    staging = staging_dir(build, task)
    handoff = {TASK_ENV: task, OUT_ENV: str(staging), SHARED_ENV: str(build.dir),
               **({WAIT_ENV: str(wait_for)} if wait_for else {})}
    parameters = {**build.params[task], "progress": False}
    run_notebook(ROOT / f"{task}.ipynb", staging / "notebooks" / f"{task}.ipynb", parameters, {**os.environ, **handoff})
    try:
        record = read_results(staging / "results" / f"{task}.json")
    except ResultsError as exc:
        raise BuildError(f"{task}.ipynb ran but its results are not usable: {exc}") from None
    if record["fingerprint"]["key"] != expected["key"]:
        raise BuildError(f"{task}.ipynb changed (or a module did) while it ran: run the build again")
    for folder in ("figures", "models", "notebooks"):  # the results file last: it vouches for the rest
        for path in sorted((staging / folder).rglob("*")) if (staging / folder).exists() else ():
            if path.is_file() and not path.name.startswith("."):
                publish(path, build.dir / path.relative_to(staging))
    publish(staging / "results" / f"{task}.json", build.dir / "results" / f"{task}.json")
    shutil.rmtree(staging, ignore_errors=True)
    return [f"{task}.ipynb ran ({reason})", f"==> {task + '.ipynb':24} {time.monotonic() - started:.1f} s"]


def stale_tasks(build: Build) -> dict[str, str]:
    """{task: why its results must be made again} for the tasks whose results are not this build's."""
    return {task: reason for task in TASKS if (reason := stale_reason(build, task))}


def step_figures(build: Build, stale: dict[str, str] | None = None, one_left=None) -> dict[str, str]:
    """The task notebooks whose results are `stale` (default: stale_tasks), all at once; {task: key}.

    A task that waits for another (pyproject.toml's `waits_for`: it takes that task's run when it is the same
    computation) trains its own runs meanwhile, and waits for that run while the file `<task>.running` says the other
    task still runs. `one_left()` is called once, when at most one notebook is still running (a core is then free).
    """
    STOP.clear()  # a failure of an earlier build in this process (make watch) stopped its commands
    if stale is None:
        step_data(build)
        stale = stale_tasks(build)
    running = {task: build.staging / f"{task}.running" for task in stale}
    waited = {TASK_SPECS[task].get("waits_for") for task in stale} & set(stale)
    for task in waited:
        running[task].parent.mkdir(parents=True, exist_ok=True)
        running[task].touch()

    def run(task: str) -> list[str]:
        other = TASK_SPECS[task].get("waits_for")
        try:
            return step_task(build, task, stale[task], wait_for=running[other] if other in waited else None)
        finally:
            running[task].unlink(missing_ok=True)  # published (or failed): who waits for it stops waiting

    with ThreadPoolExecutor(max_workers=len(TASKS)) as pool:
        futures = [pool.submit(run, task) for task in stale]
        try:
            if one_left and len(futures) <= 1:
                one_left()
            for done, future in enumerate(as_completed(futures), 1):
                for line in future.result():
                    say(line)
                if one_left and len(futures) - done == 1:
                    one_left()
        except BaseException:
            STOP.set()  # stop the notebooks still running
            raise
    return expected_keys(build)


def expected_keys(build: Build) -> dict[str, str]:
    """{task: the fingerprint key this build asks of its results}: what the report checks the files against when it
    reads them, so that results written meanwhile by a run from Jupyter are refused, never reported."""
    return {task: fingerprint(task, build.params[task])["key"] for task in TASKS}

