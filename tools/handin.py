"""The course's hand-in: report.pdf brought up to date, and assignment_code.zip of the code it was built from."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from support.fileio import atomic_write
from tools.common import ROOT, BuildError, file_sha256
from tools.context import Build
from tools.processes import build_lock
from tools.project import handin_files

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same zip


def clean_notebook(path: Path) -> bytes:
    """The notebook without outputs and execution counts (as it is committed; a Jupyter session may have saved some)."""
    book = json.loads(path.read_text(encoding="utf-8"))
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return (json.dumps(book, indent=1, ensure_ascii=False) + "\n").encode()


def changed_since_report(build: Build) -> list[str]:
    """The sources whose content differs from what build.pdf was built from."""
    executed = build.dir / "notebooks" / "report.ipynb"
    built_from = json.loads(executed.read_text())["metadata"]["build"]["sources"]
    return [name for name, digest in built_from.items()
            if not (ROOT / name).exists() or file_sha256(ROOT / name) != digest]


def write_handin(build: Build) -> None:
    """assignment_code.zip of the code build.pdf was built from (make the PDF first), and the two files named."""
    out = ROOT / "assignment_code.zip"
    with build_lock(build):
        changed = changed_since_report(build)
        if changed:
            raise BuildError(f"{', '.join(changed)} changed after {build.pdf.name} was built from them (an edit during "
                             "the build?): run make submission again. Nothing was written.")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in handin_files():
                data = clean_notebook(ROOT / name) if name.endswith(".ipynb") else (ROOT / name).read_bytes()
                archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, zipfile.ZIP_DEFLATED)
        changed = changed_since_report(build)  # an edit while the zip was written
        if changed:
            raise BuildError(f"{', '.join(changed)} changed while the zip was written: run make submission again")
        atomic_write(out, buffer.getvalue())
    print("Hand in these two files:")
    for path in (build.pdf, out):
        print(f"  {path}  ({path.stat().st_size / 1024:,.0f} KB)")

