"""Notebooks reach git without outputs; a student keeps them in JupyterLab.

A git filter (nbstripout, installed by `make setup`) strips outputs, execution counts and volatile metadata when a
notebook is staged, so `git diff` and commits show only what was written. `make lint` checks what is committed: the
staged (index) version of every tracked notebook; outside git, the files themselves.

    python -m tools.check_notebooks [--fix] [NOTEBOOK ...]   # --fix: strip the files themselves (outside git)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools.common import ROOT

# nbstripout's own list (its CLI strips these by default), and ours: the kernel's language details, which a run in
# Jupyter rewrites, and jupyterlab-myst's evaluated inline expressions, which are outputs
DEFAULT_KEYS = ["metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
                "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
                "cell.metadata.scrolled"]
EXTRA_KEYS = ["metadata.language_info", "cell.metadata.user_expressions"]
FILTER_ARGS = ["-m", "nbstripout", "--keep-id", "--extra-keys", " ".join(EXTRA_KEYS)]


def stripped(text: str) -> str:
    """The notebook as the filter stages it."""
    import nbformat  # .venv's: this module also runs before .venv exists (make setup installs the filter)
    from nbstripout import strip_output  # so is this

    book = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    book = strip_output(book, keep_output=False, keep_count=False, keep_id=True, extra_keys=DEFAULT_KEYS + EXTRA_KEYS)
    return nbformat.writes(book) + "\n"


def install_filter(python: str) -> str | None:
    """Set the nbstripout filter in the checkout's git config (.gitattributes names it for *.ipynb), run by `python`;
    None when it is set (or there is no git checkout), else why it could not be (a read-only .git)."""
    git, config = shutil.which("git"), ROOT / ".git" / "config"
    if git is None or not (ROOT / ".git").exists():
        return None
    quoted = f'"{python}" ' + " ".join(f'"{a}"' if " " in a else a for a in FILTER_ARGS)
    settings = {"filter.nbstripout.clean": quoted, "filter.nbstripout.smudge": "cat",
                "diff.ipynb.textconv": quoted + " -t"}
    for key, value in settings.items():
        current = subprocess.run([git, "config", "--get", key], cwd=ROOT, capture_output=True, text=True)
        if current.stdout.strip() == value:
            continue
        writable = not config.is_file() or os.access(config, os.W_OK)  # no trying a read-only file system
        if not writable or subprocess.run([git, "config", key, value], cwd=ROOT, capture_output=True).returncode:
            return (f"{config} cannot be written (a read-only checkout?): the git filter that keeps outputs out of "
                    "commits is not set; notebooks you commit from here keep their outputs")
    return None


def filter_missing() -> str | None:
    """Why notebooks would reach git with their outputs here (a checkout whose filter is not set: .venv was made
    without git on PATH, or by PY=), else None; reads .git/config, never writes it. Nothing when it cannot be
    written (a read-only checkout: make setup says so)."""
    git, config = shutil.which("git"), ROOT / ".git" / "config"
    if git is None or not (ROOT / ".git").exists() or (config.is_file() and not os.access(config, os.W_OK)):
        return None
    current = subprocess.run([git, "config", "--get", "filter.nbstripout.clean"], cwd=ROOT, capture_output=True)
    if current.returncode == 0 and current.stdout.strip():
        return None
    return ("the git filter that keeps outputs out of commits is not set in this checkout: `make setup` (or `python "
            "make.py setup`) sets it")


def committed() -> dict[str, str] | None:
    """{notebook: its staged text} of the tracked notebooks; None outside a git checkout."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return None
    names = subprocess.run([git, "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name: subprocess.run([git, "show", f":{name}"], cwd=ROOT, capture_output=True, text=True,
                                 encoding="utf-8", check=True).stdout for name in names.stdout.split()}


def main(argv: list[str]) -> int:
    fix = "--fix" in argv
    given = [Path(a) for a in argv if a != "--fix"]
    staged = None if given or fix else committed()
    texts = staged if staged is not None else {
        str(p): p.read_text(encoding="utf-8") for p in (given or sorted(ROOT.glob("*.ipynb")))}
    dirty = [name for name, text in texts.items() if json.loads(stripped(text)) != json.loads(text)]
    if fix:
        for name in dirty:
            Path(name).write_text(stripped(texts[name]), encoding="utf-8")
            print(f"{name}: outputs and volatile metadata stripped")
        return 0
    if dirty:
        where = "staged with outputs" if staged is not None else "carry outputs"
        remedy = ("`make setup` installs the git filter that strips them; then `git add " + " ".join(dirty) + "`"
                  if staged is not None else f'from {ROOT}: "{sys.executable}" -m tools.check_notebooks --fix')
        print(f"{', '.join(dirty)} {where} or volatile metadata: {remedy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
