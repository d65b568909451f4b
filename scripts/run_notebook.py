"""Run one notebook headless: `python scripts/run_notebook.py IN.ipynb OUT.ipynb PARAMETERS.json`.

The kernel starts first; then the parameters are read from their JSON file, waiting for the file when it is not
there yet (the build starts the report's runner while the task notebooks still run, so that its kernel is ready
when their results are). JSON keeps the parameters' types (papermill's YAML would read 1e-05 as a string). They
go into a cell tagged "injected-parameters" after the cell tagged "parameters", as papermill writes it; nbclient
runs the cells. OUT is written only when every cell ran: through a temporary name and a rename. A failing cell is
shown as its source and its traceback; an interrupt says so. Exit codes: 0 done, 1 a cell failed (or the
parameters never came), 74 a write failed, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

EX_IOERR = 74
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROOT = Path(__file__).resolve().parent.parent
PARAMETERS_WAIT = 3600.0  # seconds to wait for the parameters file before giving up


class CellFailed(Exception):
    """A cell raised: its source and traceback, and whether it was an interrupt."""

    def __init__(self, source: str, traceback: str, interrupted: bool):
        super().__init__(traceback)
        self.source, self.traceback, self.interrupted = source, traceback, interrupted


def inject_parameters(nb, parameters: dict) -> None:
    """A cell assigning `parameters`, tagged "injected-parameters", after the cell tagged "parameters"."""
    import nbformat

    source = "# Parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


async def read_parameters(path: Path) -> dict:
    """The parameters in `path`, once the file is there."""
    deadline = time.monotonic() + PARAMETERS_WAIT
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no parameters file {path} after {PARAMETERS_WAIT:.0f} s")
        await asyncio.sleep(0.02)
    return json.loads(path.read_text(encoding="utf-8"))


async def execute(source: Path, parameters_file: Path):
    """The notebook at `source` executed with the parameters of `parameters_file`; CellFailed at a failing cell."""
    import nbformat
    from jupyter_core.utils import ensure_async
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=None, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(ROOT)}})
    async with client.async_setup_kernel():
        info = await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
        nb.metadata["language_info"] = info["content"]["language_info"]
        inject_parameters(nb, await read_parameters(parameters_file))
        for index, cell in enumerate(nb.cells):
            try:
                await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellExecutionError as exc:
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                traceback = ANSI.sub("", "\n".join(errors[0].get("traceback", []))) if errors else str(exc)
                raise CellFailed(cell.source, traceback, exc.ename == "KeyboardInterrupt") from None
    return nb


def main(argv: list[str]) -> int:
    import nbformat

    source, out, parameters_file = (Path(a) for a in argv[1:4])
    try:
        nb = asyncio.run(execute(source, parameters_file))
    except CellFailed as exc:
        if exc.interrupted:
            print(f"{source.name}: interrupted", file=sys.stderr)
            return 130
        print(f"{source.name}: this cell failed:\n{_indent(exc.source)}\n{exc.traceback}", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(f"{source.name}: {exc}", file=sys.stderr)
        return 1
    partial = out.with_name(f".{out.stem}.{os.getpid()}.partial.ipynb")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, partial)
        os.replace(partial, out)
    except OSError as exc:  # a full disk, a read-only folder
        partial.unlink(missing_ok=True)
        print(f"could not write {exc.filename or partial}: {exc.strerror or exc}", file=sys.stderr)
        return EX_IOERR
    return 0


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        code = main(sys.argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
