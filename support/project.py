"""What the project knows, read from pyproject.toml's [tool.tdt4265]: the tasks, the report, its headings, the
hand-in's files, what `make watch` watches. Standard library only (support/sources.py too): CI's checks read it
(`python3 -m support.project headings`)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from support.sources import project_modules

ROOT = Path(__file__).resolve().parent.parent

_KNOWN = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["tdt4265"]

REPORT: str = _KNOWN["report"]
TASK_SPECS: dict[str, dict] = {spec["name"]: spec for spec in _KNOWN["tasks"]}  # name -> its config, waits_for
TASKS: tuple[str, ...] = tuple(TASK_SPECS)
HEADINGS: tuple[str, ...] = tuple(_KNOWN["headings"])
MIN_PAGES: int = _KNOWN["min_pages"]
REPORT_NEEDS: dict[str, list[str]] = _KNOWN["report_needs"]  # heading -> the tasks its section shows
HANDIN: tuple[str, ...] = tuple(_KNOWN["handin"])
WATCH: tuple[str, ...] = tuple(_KNOWN["watch"])
COURSE_SCRIPTS: tuple[str, ...] = tuple(_KNOWN["course_scripts"])
INSTRUCTOR: tuple[str, ...] = tuple(_KNOWN["instructor"])  # what the student version leaves out (make student)
JUPYTER_CONFIG = ROOT / "support" / "jupyter"  # Jupyter's settings for this project (exports, kernels)


def files(patterns: tuple[str, ...]) -> list[str]:
    """The project's files that match `patterns` (globs relative to its root), as sorted POSIX paths."""
    return sorted({p.relative_to(ROOT).as_posix() for pattern in patterns for p in ROOT.glob(pattern) if p.is_file()})


def instructor_only(name: str) -> bool:
    """Whether the file `name` (a POSIX path from the root) is the instructor's alone: left out of the student
    version."""
    return any(Path(name).match(pattern) or name.startswith(pattern.rstrip("*")) for pattern in INSTRUCTOR)


def notebooks() -> list[str]:
    """The build's notebooks: the report and the tasks'."""
    return [REPORT, *(f"{task}.ipynb" for task in TASKS)]


def handin_files() -> list[str]:
    """The hand-in's files: HANDIN's, the build's notebooks, and every project module they import at any depth, as
    the fingerprints count them (a package of the student's own too)."""
    books = [name for name in notebooks() if (ROOT / name).is_file()]
    modules = project_modules(*(ROOT / name for name in books), root=ROOT)
    found = {*files(HANDIN), *books, *(path.relative_to(ROOT).as_posix() for path in modules)}
    return sorted(found - set(course_scripts()))


def course_scripts() -> list[str]:
    """The course's starter scripts at the root (pyproject.toml's course_scripts), if a student brought them: neither
    the checks nor the report read them (they read utils.py and trainer.py), so the hand-in leaves them out."""
    return files(COURSE_SCRIPTS)


def left_out() -> list[str]:
    """What the hand-in leaves out: notebooks beside the build's (a copy made in Jupyter, a scratch notebook), and the
    course's starter scripts."""
    return [name for name in files(("*.ipynb",)) if name not in notebooks()] + course_scripts()


def course_scripts_note() -> str:
    """A line for make check and make report when course starter scripts are here; '' when none is."""
    found = course_scripts()
    return (f"{', '.join(found)}: not read by make check, make report or make submission, which read utils.py and "
            "trainer.py: move your code into their regions") if found else ""


if __name__ == "__main__":  # `python3 -m support.project headings` (one per line), or `min_pages`
    print({"headings": "\n".join(HEADINGS), "min_pages": MIN_PAGES}[sys.argv[1]])
