"""What the build knows, read from pyproject.toml's [tool.tdt4265]: the tasks, the report, its headings, the
hand-in's files, what `make watch` watches. Standard library only: CI's checks read it too
(`python3 -m tools.project headings`)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_KNOWN = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["tdt4265"]

REPORT: str = _KNOWN["report"]
TASKS: tuple[str, ...] = tuple(_KNOWN["tasks"])
HEADINGS: tuple[str, ...] = tuple(_KNOWN["headings"])
MIN_PAGES: int = _KNOWN["min_pages"]
HANDIN: tuple[str, ...] = tuple(_KNOWN["handin"])
WATCH: tuple[str, ...] = tuple(_KNOWN["watch"])
JUPYTER_CONFIG = ROOT / "support" / "jupyter"  # Jupyter's settings for this project (exports, kernels)


def files(patterns: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """The files under `root` that match `patterns` (globs relative to it), as sorted POSIX paths."""
    return sorted({p.relative_to(root).as_posix() for pattern in patterns for p in root.glob(pattern) if p.is_file()})


def notebooks() -> list[str]:
    """The build's notebooks: the report and the tasks'."""
    return [REPORT, *(f"{task}.ipynb" for task in TASKS)]


def handin_files(root: Path = ROOT) -> list[str]:
    """The hand-in's files, as they are in `root`."""
    return sorted({*files(HANDIN, root), *(name for name in notebooks() if (root / name).is_file())})


def left_out(root: Path = ROOT) -> list[str]:
    """Notebooks beside the build's that the hand-in leaves out (a copy made in Jupyter, a scratch notebook)."""
    return [name for name in files(("*.ipynb",), root) if name not in notebooks()]


if __name__ == "__main__":  # `python3 -m tools.project headings`: one per line
    print("\n".join({"headings": HEADINGS, "tasks": TASKS, "handin": handin_files()}[sys.argv[1]]))
