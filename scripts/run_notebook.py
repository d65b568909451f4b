"""Run one notebook headless: `python scripts/run_notebook.py IN.ipynb OUT.ipynb PARAMETERS.json`.

The parameters come from a JSON file, so their types come back as they went in (papermill's YAML would read
1e-05 as a string). OUT is written only when every cell ran: through a temporary name and a rename. A failing
cell is shown as its source and its traceback, without papermill's frames; an interrupt says so. Exit codes:
0 done, 1 a cell failed, 74 a write failed, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

EX_IOERR = 74
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failing_cell(path: Path) -> tuple[str, str]:
    """(source, traceback) of the first cell of the executed notebook at `path` whose output is an error."""
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return cell.source, ANSI.sub("", "\n".join(output.get("traceback", [])))
    return "", ""


def main(argv: list[str]) -> int:
    source, out, parameters_file = (Path(a) for a in argv[1:4])
    parameters = json.loads(parameters_file.read_text(encoding="utf-8"))
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.{os.getpid()}.partial.ipynb")  # papermill wants .ipynb
    try:
        papermill.execute_notebook(source, partial, parameters=parameters, kernel_name="python3",
                                   cwd=str(Path(__file__).resolve().parent.parent), progress_bar=False,
                                   log_output=False)
    except PapermillExecutionError as exc:
        cell, traceback = failing_cell(partial) if partial.exists() else ("", "")
        partial.unlink(missing_ok=True)
        if exc.ename == "KeyboardInterrupt":
            print(f"{source.name}: interrupted", file=sys.stderr)
            return 130
        traceback = traceback or f"{exc.ename}: {exc.evalue}"
        print(f"{source.name}: this cell failed:\n{_indent(cell)}\n{traceback}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        partial.unlink(missing_ok=True)
        print(f"{source.name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only folder
        partial.unlink(missing_ok=True)
        print(f"could not write {exc.filename or partial}: {exc.strerror or exc}", file=sys.stderr)
        return EX_IOERR
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
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
