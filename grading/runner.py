"""The grader's end of a hand-in's process (grading/sandbox.py): start it, send it requests, read its answers
within a time limit, and stop it (its whole process group) when it overruns, ends or is done. What it printed and
what it was refused are kept for the report."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SANDBOX = Path(__file__).resolve().parent / "sandbox.py"
OUTPUT_KEPT = 4000  # characters of the hand-in's own output kept for the report


class Ended(Exception):
    """The hand-in's process ended, or overran its time: the message says which, and how."""


class Sandbox:
    """One hand-in process serving requests; `ask` returns (answer, arrays) or raises Ended."""

    def __init__(self, folder: Path, memory_bytes: int, cpu_seconds: int):
        self.folder, self.memory, self.cpu = Path(folder), memory_bytes, cpu_seconds
        self.proc, self.reader, self.buffer, self.output, self.refused = None, None, b"", [], []

    def start(self, timeout: float) -> dict:
        """Start the process; its first answer (the hand-in imported, or why not), or Ended."""
        read_end, write_end = os.pipe()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.folder), "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
               "GRADE_MEMORY": str(self.memory), "GRADE_CPU": str(self.cpu),
               **({"OPENBLAS_CORETYPE": os.environ["OPENBLAS_CORETYPE"]} if "OPENBLAS_CORETYPE" in os.environ else {}),
               **({"SYSTEMROOT": os.environ["SYSTEMROOT"]} if "SYSTEMROOT" in os.environ else {})}
        self.proc = subprocess.Popen([sys.executable, "-I", str(SANDBOX), str(self.folder), str(write_end)],
                                     cwd=self.folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, pass_fds=(write_end,), start_new_session=True)
        os.close(write_end)
        self.reader, self.buffer = read_end, b""
        threading.Thread(target=self._keep_output, daemon=True).start()
        return self._read(timeout, "importing the hand-in's modules")[0]

    def _keep_output(self) -> None:
        kept = 0
        for line in iter(self.proc.stdout.readline, b""):
            if kept < OUTPUT_KEPT:
                self.output.append(line.decode(errors="replace"))
                kept += len(line)

    def ask(self, message: dict, arrays=(), timeout: float = 10.0, doing: str = "") -> tuple[dict, list]:
        """Send a request (and the raw bytes of `arrays`); its answer and the arrays that follow it, or Ended."""
        header = {**message, "raw": [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in arrays]}
        try:
            self.proc.stdin.write(json.dumps(header).encode() + b"\n" + b"".join(a.tobytes() for a in arrays))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise Ended(self._how_it_ended(doing)) from None
        return self._read(timeout, doing)

    def _read(self, timeout: float, doing: str) -> tuple[dict, list]:
        deadline = time.monotonic() + timeout
        header = self._until(lambda: b"\n" in self.buffer, deadline, doing)
        line, _, self.buffer = self.buffer.partition(b"\n")
        del header
        try:
            message = json.loads(line)
        except ValueError:
            raise Ended(f"the hand-in's process sent something that is not an answer ({doing})") from None
        self.refused = message.get("refused", self.refused)
        arrays = []
        for spec in message.get("raw", []):
            dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
            size = int(np.prod(shape)) * dtype.itemsize
            self._until(lambda size=size: len(self.buffer) >= size, deadline, doing)
            arrays.append(np.frombuffer(self.buffer[:size], dtype=dtype).reshape(shape).copy())
            self.buffer = self.buffer[size:]
        return message, arrays

    def _until(self, ready, deadline: float, doing: str) -> None:
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise Ended(f"it ran out of time ({doing}): stopped")
            readable, _, _ = select.select([self.reader], [], [], min(left, 1.0))
            if readable:
                chunk = os.read(self.reader, 1 << 20)
                if not chunk:
                    raise Ended(self._how_it_ended(doing))
                self.buffer += chunk

    def _how_it_ended(self, doing: str) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.stop()
            return f"it stopped answering ({doing})"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            why = {"SIGKILL": " (out of memory, or killed)", "SIGXCPU": " (its processor time limit)"}.get(name, "")
            return f"its process was ended by {name}{why} ({doing})"
        return f"its process exited with code {code} ({doing})"

    def stop(self) -> None:
        """End the process and anything it started (its process group)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.reader is not None:
            os.close(self.reader)
            self.reader = None
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
