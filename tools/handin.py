"""The course's hand-in: report.pdf brought up to date, and assignment_code.zip of the code it was built from."""

from __future__ import annotations

import io
import json
import zipfile

from support.fileio import atomic_write
from support.project import handin_files, left_out
from support.sources import read_notebook
from tools.check_notebooks import stripped
from tools.common import ROOT, BuildError
from tools.context import Build
from tools.processes import build_lock
from tools.report import counted, recorded

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same zip


def changed_since_report(build: Build) -> list[str]:
    """The sources whose content, as far as it counts (a notebook's cells, not its outputs), differs from what
    build.pdf was built from."""
    built_from = recorded(build.dir / "notebooks" / "report.ipynb").get("sources", {})
    return [name for name, digest in built_from.items() if not (ROOT / name).exists() or counted(ROOT / name) != digest]


def pending_list(pending: dict[str, str]) -> str:
    """'2 tasks pending:' and a line for each: '  2b: Task 2b, not written yet: BaseTrainer.train_step (...)'."""
    return (f"{len(pending)} task{'s' if len(pending) > 1 else ''} pending:\n"
            + "\n".join(f"  {task}: {why}" for task, why in sorted(pending.items())) + "\n")


def write_handin(build: Build) -> None:
    """assignment_code.zip of the code build.pdf was built from (make the PDF first), and the two files named."""
    out = ROOT / "assignment_code.zip"
    with build_lock(build):
        if not recorded(build.dir / "notebooks" / "report.ipynb"):
            raise BuildError(f"the executed report in {build.dir} is missing or was altered: run `make submission` "
                             "(or `python make.py submission`) again. Nothing was written.")
        pending = recorded(build.dir / "notebooks" / "report.ipynb").get("pending", {})
        if pending and build.variables["PARTIAL"] != "yes":
            earlier = "; the one here is an earlier hand-in's" if out.exists() else ""
            raise BuildError(f"{build.pdf.name} is a partial report, {pending_list(pending)}Finish them, or hand it "
                             f"in as it is with `make submission PARTIAL=yes`. assignment_code.zip was not written"
                             f"{earlier}.")
        changed = changed_since_report(build)
        if changed:
            raise BuildError(f"{', '.join(changed)} changed after {build.pdf.name} was built from them (an edit during "
                             "the build?): run `make submission` (or `python make.py submission`) again. Nothing was "
                             "written.")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in handin_files():
                data = (stripped(json.dumps(read_notebook(ROOT / name))).encode() if name.endswith(".ipynb")
                        else (ROOT / name).read_bytes())  # notebooks as git stages them
                archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, zipfile.ZIP_DEFLATED)
        changed = changed_since_report(build)  # an edit while the zip was written
        if changed:
            raise BuildError(f"{', '.join(changed)} changed while the zip was written: run `make submission` (or "
                             "`python make.py submission`) again")
        atomic_write(out, buffer.getvalue())
    if left_out():
        print(f"Left out of {out.name}: {', '.join(left_out())} (not a notebook or module the report is built from)")
    if pending:
        print(f"Handed in as a partial report (PARTIAL=yes): {pending_list(pending)}")
    print("Hand in these two files:")
    for path in (build.pdf, out):
        print(f"  {path}  ({path.stat().st_size / 1024:,.0f} KB)")

