"""What one invocation builds: the data set, its build folder and PDF, each notebook's parameters; all checked
before any work."""

from __future__ import annotations

import calendar
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from support.handoff import build_dir
from tools.common import ROOT, BuildError
from tools.params import ParameterError, resolve


@dataclass
class Build:
    """What one invocation builds: the data set, its build folder and outputs, and each notebook's parameters."""

    dataset: str
    dir: Path
    pdf: Path
    params: dict[str, dict]
    variables: dict[str, str]

    @property
    def staging(self) -> Path:
        return self.dir / ".staging"

    @property
    def html(self) -> Path:
        return self.pdf.with_suffix(".html")


def context(variables: dict[str, str]) -> Build:
    """The build asked for; BuildError (nothing run) if a parameter is not valid."""
    try:
        params = resolve(variables["PARAMS"], variables["SEED"], variables["DATASET"])
    except ParameterError as exc:
        raise BuildError(f"{exc}. Nothing was run.") from None
    for name, allowed in (("PDF_ENGINE", ("auto", "latex", "typst")), ("AUTO_INSTALL", ("yes", "no"))):
        if variables[name] not in allowed:
            raise BuildError(f"{name} must be one of {', '.join(allowed)}, received {variables[name]!r}. "
                             "Nothing was run.")
    pdf_epoch()  # SOURCE_DATE_EPOCH, if set, checked now
    dataset = next(iter(params.values()))["dataset"]  # the same for every task (tools/params.resolve)
    default_pdf = ROOT / ("report.pdf" if dataset == "mnist" else f"report-{dataset}.pdf")
    pdf = Path(variables.get("PDF") or default_pdf).resolve()
    folder = Path(variables.get("BUILD_DIR") or build_dir(dataset)).resolve()
    check_output(pdf, "PDF", ".pdf", b"%PDF", folder)
    return Build(dataset, folder, pdf, params, variables)


# Folders an output must not go into: the build's own (`make clean` removes them), the environment's, the data
# caches', git's
OWNED = ("build", ".venv", "data", ".git")
BUILD_FOLDERS = ("results", "figures", "notebooks", "models", "pdf", ".staging")  # of any build folder


def check_output(path: Path, name: str, suffix: str, magic: bytes, folder: Path) -> None:
    """BuildError, before any work, unless `path` can take an output: it ends in `suffix`, is no folder and no other
    file (an existing one must start with `magic`: an earlier output), its folder exists, and is none of the folders
    the build, .venv, the data or git own (`folder` is the build folder)."""
    owned = [ROOT / name for name in OWNED] + [folder / name for name in BUILD_FOLDERS]
    inside = next((place for place in owned if path.is_relative_to(place)), None)
    if inside is not None:
        raise BuildError(f"{name}={path} lies in {inside}, a folder that the build, .venv, the data caches or git keep "
                         f"for themselves (make clean or distclean empties it): give a place outside it, such as "
                         f"{ROOT / path.name}. Nothing was run.")
    if not path.parent.is_dir():
        raise BuildError(f"{name}={path}: the folder {path.parent} does not exist; create it first, or give a file "
                         "in a folder that exists. Nothing was run.")
    if path.suffix.lower() != suffix:
        raise BuildError(f"{name}={path} does not end in {suffix}: give the {suffix} file to write (it may be "
                         "a source, which the build would overwrite). Nothing was run.")
    if path.is_dir():
        raise BuildError(f"{name}={path} is a folder: give a file name in it, such as {path / ('report' + suffix)}. "
                         "Nothing was run.")
    if path.exists():
        with open(path, "rb") as existing:
            if existing.read(len(magic)) != magic:
                raise BuildError(f"{name}={path} exists and is not a {suffix} file the build wrote: give another "
                                 "name. Nothing was run.")


LAST_EPOCH = 253402300799  # 9999-12-31 23:59:59 UTC: four-digit years


def pdf_epoch() -> int:
    """The PDF's date in seconds since 1970: SOURCE_DATE_EPOCH if set, else today's date (00:00, as UTC), so that
    the same report built twice on a day gives the same bytes. BuildError if SOURCE_DATE_EPOCH is not a number."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return calendar.timegm(datetime.date.today().timetuple())
    if not value.isdigit() or int(value) > LAST_EPOCH:
        raise BuildError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970 up to {LAST_EPOCH} (the end of 9999), "
                         f"e.g. $(git log -1 --format=%ct); received {value!r}. Nothing was run.")
    return int(value)

