"""Processes and places of a build: commands stopped at an interrupt, the notebook runner, the build folder's lock,
the staging folder and publishing by rename, apt-get."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

from support.sources import read_notebook
from tools.common import ROOT, BuildError, say
from tools.context import Build

STOP = threading.Event()  # set at an interrupt: every running command is stopped


@contextlib.contextmanager
def build_lock(build: Build):
    """Hold the build folder's lock; a second build says whose it is and waits."""
    build.dir.mkdir(parents=True, exist_ok=True)
    lock, owner = FileLock(build.dir / ".lock"), build.dir / ".lock.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = owner.read_text().strip() if owner.exists() else "unknown"
        say(f"another build is running in {build.dir} (pid {pid}); waiting for it to finish")
        waited = time.monotonic()
        lock.acquire()
        say(f"the other build finished after {time.monotonic() - waited:.0f} s; this one starts now")
    try:
        owner.write_text(str(os.getpid()))
        shutil.rmtree(build.staging, ignore_errors=True)  # what an interrupted build left half-done
        yield
    finally:
        shutil.rmtree(build.staging, ignore_errors=True)
        owner.unlink(missing_ok=True)
        lock.release()


def run_command(command: list[str], cwd: Path = ROOT, env: dict | None = None) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `command`; stopped (SIGINT, then harder) at an interrupt."""
    return finish_command(start_command(command, cwd, env))


def start_command(command: list[str], cwd: Path = ROOT, env: dict | None = None, stdin=subprocess.DEVNULL
                  ) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")


def finish_command(proc: subprocess.Popen) -> tuple[int, str]:
    """(exit code, stdout + stderr) of a started command, once it ends; stopped at an interrupt. Its standard input
    (a pipe, for the notebook runner) stays open until then: the runner takes its end for the build's."""
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    try:
        while True:
            try:
                proc.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                if STOP.is_set():
                    raise KeyboardInterrupt from None
        reader.join()
        return proc.returncode, "".join(chunks)
    except KeyboardInterrupt:
        STOP.set()
        _stop(proc)
        raise
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()


def _stop(proc: subprocess.Popen) -> None:
    """Ask `proc` to stop as Ctrl-C would, then insist."""
    for ask, wait in ((lambda: proc.send_signal(signal.SIGINT) if os.name != "nt" else proc.terminate(), 10),
                      (proc.terminate, 5), (proc.kill, 5)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            ask()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def staging_dir(build: Build, name: str) -> Path:
    build.staging.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}.", dir=build.staging))


def publish(src: Path, dest: Path) -> None:
    """Move a finished file into place by rename (the old one stays until then)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)


class NotebookRun:
    """tools/run_notebook.py started now: its kernel starts at once, and it runs the notebook into `out` when
    `run` sends it the parameters (the report's run is started while the task notebooks still run). The
    parameters go through its standard input: if this process ends first, the runner sees it closed and ends too."""

    def __init__(self, source: Path, out: Path, env: dict | None = None):
        self.source, self.out = source, out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = start_command(python(str(ROOT / "tools" / "run_notebook.py"), str(source), str(out), "-"),
                                  env=env, stdin=subprocess.PIPE)

    def run(self, parameters: dict, notebook: dict | None = None) -> str:
        """The notebook (or `notebook`, its content as read by the build) run with `parameters`; its output.
        BuildError showing the failing cell."""
        message = {"parameters": parameters, **({"notebook": notebook} if notebook is not None else {})}
        with contextlib.suppress(OSError):  # a runner that has ended already: its exit code says why
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        code, output = finish_command(self.proc)
        output = "\n".join(line for line in output.splitlines() if "Kernel is running over TCP" not in line)
        if code == 130:
            raise KeyboardInterrupt
        if code == 74:  # the runner could not write: one line naming the file
            raise BuildError(f"{output.strip().splitlines()[-1]}; the last good outputs are kept")
        if code:
            raise BuildError(f"{self.source.name} failed:\n{output.strip()}")
        return output

    def cancel(self) -> None:
        """Stop the runner (and its kernel) without running the notebook: its standard input closes; then insist."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        _stop(self.proc)


def run_notebook(source: Path, out: Path, parameters: dict, env: dict | None = None) -> str:
    """Execute `source`, as read now, into `out` with `parameters` (its kernel in `env`); its output. BuildError
    showing the failing cell."""
    book = read_notebook(source)
    return NotebookRun(source, out, env).run(parameters, notebook=book)


def timed(label: str, started: float) -> None:
    say(f"==> {label:24} {time.monotonic() - started:.1f} s")


def can_apt(build: Build) -> bool:
    return (build.variables["AUTO_INSTALL"] == "yes" and os.name == "posix" and os.geteuid() == 0
            and shutil.which("apt-get") is not None)


def apt_install(packages: str) -> None:
    say(f"installing with apt-get: {packages}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages.split()]):
        code, output = run_command(command, env=env)
        if code:
            raise BuildError(f"{' '.join(command)} failed:\n{output[-2000:]}")

