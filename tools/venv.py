""".venv, made from the hashed lock `requirements.lock` when it is missing, made by another Python, or broken; or
an interpreter given with PY= (a conda environment), checked. Standard library only: it runs before .venv exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.common import ROOT, BuildError, file_sha256, say

VENV = ROOT / ".venv"
LOCK_FILE = ROOT / "requirements.lock"


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


class DirLock:
    """An exclusive lock on a file (fcntl or msvcrt, standard library; the same lock as filelock's): for .venv before
    filelock is installed, and for `make clean`, which waits for the builds whose folders it removes."""

    def __init__(self, path: Path, waiting: str):
        self.path, self.waiting, self.handle = path, waiting, None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        if not self._try(blocking=False):
            say(self.waiting)
            self._try(blocking=True)
        return self

    def _try(self, blocking: bool) -> bool:
        fd = self.handle.fileno()
        try:
            if os.name == "nt":
                import msvcrt  # Windows' only

                while True:
                    try:
                        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                        return True
                    except OSError:
                        if not blocking:
                            return False
                        time.sleep(0.5)
            import fcntl  # POSIX's only

            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False

    def __exit__(self, *exc):
        self.handle.close()  # closing releases either kind of lock


def ensure_venv() -> tuple[Path, bool]:
    """(.venv's Python, whether it was installed now): (re)made when missing, made by another Python, or not
    matching the lock; one line each."""
    stamp = VENV / ".installed.json"
    want = {"lock": file_sha256(LOCK_FILE), "python": "{}.{}".format(*sys.version_info[:2])}
    with DirLock(ROOT / ".venv.lock", "another build is preparing .venv; waiting"):
        try:
            have = json.loads(stamp.read_text())
        except (OSError, ValueError):
            have = None
        missing = _missing_modules(venv_python()) if have == want and _present(venv_python()) else None
        if missing == []:
            return venv_python(), False
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
        say(f"installing the locked packages into .venv (requirements.lock, {len(_locked_names())} packages; from "
            "PyPI, so the network is needed this once)")
        _pip_install(force)
        _remove_unlocked()
        missing = _missing_modules(venv_python())
        if missing != [] and not force:  # pip kept a package that an interrupted install broke
            say("repairing .venv: some packages did not import after the install; reinstalling the lock")
            _pip_install(force=True)
            missing = _missing_modules(venv_python())
        if missing != []:
            raise BuildError(f"{VENV} is still missing {', '.join(missing or ['packages'])} "
                             "after a fresh install: remove .venv and run again")
        stamp.write_text(json.dumps(want))
    return venv_python(), True


JUPYTER_SHIM = ("# written by make setup: this environment's Jupyter exports report.ipynb as the report\n"
                "load_subconfig({path!r})  # noqa: F821\n")


# JupyterLab's defaults in .venv: every cell of a notebook rendered, not only those on screen (windowing). The
# report's values are evaluated when its Markdown cells run, and jupyterlab-myst finds a cell's expressions in its
# last rendering: with windowing, Run All left the cells below the screen without values.
LAB_OVERRIDES = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}


def point_jupyter(venv: Path = VENV) -> None:
    """.venv's Jupyter (JupyterLab's File > Save and Export, `jupyter nbconvert`) reads the project's export
    settings, support/jupyter/: one line per settings file in .venv/etc/jupyter, where Jupyter looks; and .venv's
    JupyterLab renders every cell (LAB_OVERRIDES)."""
    files = {venv / "etc" / "jupyter" / name: JUPYTER_SHIM.format(path=str(ROOT / "support" / "jupyter" / name))
             for name in ("jupyter_nbconvert_config.py", "jupyter_server_config.py")}
    files[venv / "share" / "jupyter" / "lab" / "settings" / "overrides.json"] = json.dumps(LAB_OVERRIDES, indent=2)
    for path, text in files.items():
        if not _present(path) or path.read_text(encoding="utf-8", errors="replace") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def _present(path: Path) -> bool:
    """Whether `path` exists; False also when it cannot be looked at (a .venv copied from another user links into
    that user's folders)."""
    try:
        return path.exists()
    except OSError:
        return False


def _pip_install(force: bool) -> None:
    """Install the hashed lock into .venv (every package again with `force`); BuildError in one line when PyPI cannot
    be reached, else with pip's own error lines."""
    proc = subprocess.run([str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           "--retries", "1", "--timeout", "30", "--require-hashes", "--no-deps",
                           *(["--force-reinstall"] if force else []), "-r", str(LOCK_FILE)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if not proc.returncode:
        return
    if any(sign in proc.stderr for sign in OFFLINE):
        raise BuildError("PyPI could not be reached to install .venv (requirements.lock): connect to the network and "
                         "run this again (once .venv is made the build needs no network, but for the data), or give "
                         "PY=<a Python that has requirements.txt installed>")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()[-10:]
    raise BuildError("installing requirements.lock into .venv failed:\n  " + "\n  ".join(errors[:10]) +
                     "\nthe next run tries again; or remove .venv to start afresh")


# what pip says when it cannot reach the index (no network, a proxy, DNS)
OFFLINE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
           "Name or service not known", "ConnectTimeoutError", "ProxyError", "Network is unreachable")


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
    """The modules of REQUIRED_MODULES that `python` cannot find ([] when all are there); None if it does not run
    or is older than Python 3.11."""
    code = ("import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None)); "
            "sys.exit(sys.version_info < (3, 11))")
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
    """BuildError unless `python` (PY=...) runs, is Python >= 3.11 and has every package of requirements.txt;
    checked every time."""
    missing = _missing_modules(Path(python))
    if missing is None:
        raise BuildError(f"PY={python} does not run, or is older than Python 3.11")
    if missing:
        raise BuildError(f"PY={python} lacks {' '.join(missing)}: install requirements.txt into that environment "
                         "(conda: environment.yml), or leave PY unset to use .venv")
