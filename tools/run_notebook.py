"""Run one notebook headless: `python tools/run_notebook.py IN.ipynb OUT.ipynb PARAMETERS.json` (or `-`).

The kernel starts first; then the parameters are read, as JSON, from the file or, with `-`, from standard input
once the build sends them (the build starts the report's runner while the task notebooks still run, so that its
kernel is ready when their results are; if standard input closes without parameters, because the build stopped
or is gone, the runner ends). JSON keeps the parameters' types (papermill's YAML would read 1e-05 as a string).
They go into a cell tagged "injected-parameters" after the cell tagged "parameters", as papermill writes it;
nbclient runs the cells, and each Markdown cell's inline expressions ({eval}`t3.gap`) are evaluated in turn, as
JupyterLab's Run All does (support/inline.py). OUT is written only when every cell ran: through a temporary name
and a rename. A failing cell is shown as its source and its traceback; an interrupt says so. Exit codes: 0 done,
1 a cell failed (or no parameters came, or the kernel would not start), 74 a write failed, 130 interrupted.

The build starts several kernels at once. Over TCP each one binds ports that its manager found free a moment before,
so two kernels (or any program) can race for a port and one dies at start (jupyter/jupyter_client#154). Where zmq has
them (macOS, Linux) kernels talk over Unix sockets in a private temporary folder instead: no ports at all. Elsewhere
(Windows) a kernel that dies before it answers is started again, up to KERNEL_STARTS times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import zmq
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from traitlets.config import Config

EX_IOERR = 74
KERNEL_STARTS = 3
INTERRUPTED = threading.Event()  # set by Ctrl-C (or SIGTERM, SIGHUP)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from support.fileio import atomic_write  # noqa: E402
from support.inline import ExpressionError, evaluate  # noqa: E402
from support.sources import NotebookError, read_notebook  # noqa: E402
from tools.common import STOP_SIGNALS  # noqa: E402


class CellFailed(Exception):
    """A cell raised: its source and traceback, and whether it was an interrupt."""

    def __init__(self, source: str, traceback: str, interrupted: bool):
        super().__init__(traceback)
        self.source, self.traceback, self.interrupted = source, traceback, interrupted


def inject_parameters(nb, parameters: dict) -> None:
    """A cell assigning `parameters`, tagged "injected-parameters", after the cell tagged "parameters"; none for no
    parameters."""
    if not parameters:
        return
    source = "# Parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


class NoParameters(Exception):
    """Standard input closed without parameters: the build that started this runner stopped, or is gone."""


async def read_message(source: str, gone) -> dict:
    """{"parameters": ..., "notebook": ... (optional)}: the parameters alone from the JSON file `source`, or ("-")
    the message the build writes on standard input as one line. The build keeps standard input open while the run
    lasts: when it closes (the build was stopped, or killed), `gone()` is called."""
    if source != "-":
        return {"parameters": json.loads(Path(source).read_text(encoding="utf-8"))}
    loop = asyncio.get_running_loop()
    arrived = loop.create_future()

    def tell(callback) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the runner is ending anyway
            loop.call_soon_threadsafe(callback)

    def read() -> None:  # a daemon thread: blocked on a read, it must not keep the runner from exiting
        line = sys.stdin.readline()
        tell(lambda: arrived.done() or arrived.set_result(line))
        if line:
            sys.stdin.read()  # returns at the end of standard input: the build closed it or is gone
            tell(gone)

    threading.Thread(target=read, daemon=True).start()
    line = await arrived
    if not line.strip():
        raise NoParameters
    return json.loads(line)


async def execute(source: Path, parameters: str):
    """The notebook at `source` (or the one the build sends) executed with the `parameters` (a file, or "-");
    CellFailed at a failing cell."""
    async with contextlib.AsyncExitStack() as stack:
        # nbclient's own handler of Ctrl-C only stops the kernel, which leaves a runner waiting for its parameters
        # waiting: cancel the run instead (the kernel stops on the way out). Windows' loop has no signal handlers:
        # there asyncio.run's own cancels the run.
        run = asyncio.current_task()

        def interrupt() -> None:
            INTERRUPTED.set()
            run.cancel()

        for name in STOP_SIGNALS:  # a closed terminal (SIGHUP) or a kill (SIGTERM) too: the kernel and folder go
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(getattr(signal, name), interrupt)
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="nbrun-", ignore_cleanup_errors=True))
        client = NotebookClient(nbformat.v4.new_notebook(), kernel_name="python3", timeout=None,
                                shutdown_kernel="immediate", resources={"metadata": {"path": str(ROOT)}},
                                config=kernel_config(Path(folder)))
        await start_kernel(client, stack, last_resort=kernel_config(Path(folder), tcp=True))
        info = await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
        message = await read_message(parameters, gone=interrupt)
        # the notebook as the build read and fingerprinted it, whatever the file holds by now; else the file
        book = message.get("notebook") or read_notebook(source)
        nb = client.nb = nbformat.reads(json.dumps(book), as_version=4)
        nb.metadata["language_info"] = info["content"]["language_info"]
        inject_parameters(nb, message["parameters"])
        for index, cell in enumerate(nb.cells):
            try:
                if cell.cell_type == "markdown":
                    await evaluate(client, cell)
                else:
                    await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except ExpressionError as exc:
                raise CellFailed(cell.source, str(exc), False) from None
            except CellExecutionError as exc:
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                traceback = ANSI.sub("", "\n".join(errors[0].get("traceback", []))) if errors else str(exc)
                raise CellFailed(cell.source, traceback, exc.ename == "KeyboardInterrupt") from None
            except DeadKernelError:  # stopped by an interrupt, or it died (out of memory, a crash)
                raise CellFailed(cell.source, "the kernel died while this cell ran", INTERRUPTED.is_set()) from None
    return nb


class KernelDidNotStart(Exception):
    """The kernel died before it answered, KERNEL_STARTS times."""


def kernel_config(folder: Path, tcp: bool = False):
    """The kernel manager's configuration: Unix sockets in `folder` where zmq has them, else (or `tcp`) TCP on
    localhost."""
    config = {"connection_file": str(folder / "kernel.json")}
    # sockets kernel-1 ... kernel-5; a Unix socket's path holds at most 103 bytes on macOS (107 on Linux)
    if not tcp and os.name != "nt" and zmq.has("ipc") and len(os.fsencode(folder / "kernel-00")) <= 103:
        config |= {"transport": "ipc", "ip": str(folder / "kernel")}
    return Config({"KernelManager": config})


async def start_kernel(client, stack: contextlib.AsyncExitStack, last_resort=None) -> None:
    """`client`'s kernel started and answering, stopped when `stack` closes; started again if it dies at start,
    the last time with the configuration `last_resort` if given (TCP: a folder where Unix sockets cannot be)."""
    for attempt in range(1, KERNEL_STARTS + 1):
        if attempt == KERNEL_STARTS and last_resort is not None:
            client.config = last_resort
        client.km = client.create_kernel_manager()
        stack.push_async_callback(stop_kernel, client, client.km)  # first: a Ctrl-C during the start stops it too
        await client.async_start_new_kernel()
        try:
            await client.async_start_new_kernel_client()
            return
        except RuntimeError as exc:  # jupyter_client's wait_for_ready; nbclient has stopped the kernel
            if "Kernel died before replying" not in str(exc):
                raise
            print(f"the kernel died as it started (attempt {attempt} of {KERNEL_STARTS})", file=sys.stderr)
    raise KernelDidNotStart


async def stop_kernel(client, km) -> None:
    """Stop the kernel of `km`, if it is still `client`'s and runs."""
    if client.km is km:
        await client._async_cleanup_kernel()


def main(argv: list[str]) -> int:
    source, out, parameters = Path(argv[1]), Path(argv[2]), argv[3]
    try:
        nb = asyncio.run(execute(source, parameters))
    except asyncio.CancelledError:
        print(f"{source.name}: interrupted", file=sys.stderr)
        return 130
    except CellFailed as exc:
        if exc.interrupted:
            print(f"{source.name}: interrupted", file=sys.stderr)
            return 130
        print(f"{source.name}: this cell failed:\n{_indent(exc.source)}\n{exc.traceback}", file=sys.stderr)
        return 1
    except KernelDidNotStart:
        print(f"{source.name}: the kernel died as it started, {KERNEL_STARTS} times (its messages are above); not run",
              file=sys.stderr)
        return 1
    except NoParameters:
        print(f"{source.name}: no parameters came (the build stopped); not run", file=sys.stderr)
        return 1
    except NotebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        atomic_write(out, nbformat.writes(nb).encode())
    except OSError as exc:  # a full disk, a read-only folder
        print(f"could not write {exc.filename or out}: {exc.strerror or exc}", file=sys.stderr)
        return EX_IOERR
    return 0


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


if __name__ == "__main__":
    for name in STOP_SIGNALS:  # even if started with SIGINT ignored
        signal.signal(getattr(signal, name), signal.default_int_handler)
    try:
        code = main(sys.argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
