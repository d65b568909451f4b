"""`make student`: the student version of the assignment, written from this source to dist/student/.

Every solution region (tools/regions.py) becomes its prompt and a `raise NotImplementedError("Task 2a: ...")`, every
answer of the report a cell that asks for it; HIDDEN regions and the instructor's files (pyproject.toml's
`instructor`) are left out; everything else is copied as it is. No git history, no build/, no data. Written to a
temporary folder and renamed, then verified: put back, its regions give this source again; no line of any region is
anywhere in it; its own `make test` and `make check` run (with this environment's Python).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.blanks import blanks
from support.fileio import atomic_write
from support.project import instructor_only
from tools import regions
from tools.common import ROOT, BuildError, say

OUT = ROOT / "dist" / "student"
MARKED = (".py", ".toml", ".ipynb")  # the files whose regions count; no mark may be anywhere else
MIN_LINE = 20  # a region's line this long (stripped, not a comment) must appear nowhere in the student version


def source_files(root: Path = ROOT) -> list[str]:
    """The files of the source, as POSIX paths: git's tracked files and the new ones it does not ignore (as the
    working tree holds them), or outside git every file but the build's, the data's and the environments'."""
    if (root / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, check=True).stdout
        return sorted(name for name in listed.decode().split("\0")
                      if name and (root / name).is_file() and not name.startswith("dist/"))
    skip = {".git", ".venv", "build", "data", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(root).parts))


def student_text(name: str, text: str) -> str:
    """A file's student version."""
    if name.endswith(".ipynb"):
        book = json.loads(text)
        student = regions.notebook_student(book, name)
        return text if student == book else regions.dumps(student)  # unmarked: byte for byte
    return regions.student(text, name) if name.endswith(MARKED) else text


def solution_lines(name: str, text: str) -> list[str]:
    """The lines of `text`'s solution regions that must appear nowhere in the student version."""
    if name.endswith(".ipynb"):
        found = [answer for _, answer in regions.notebook_regions(json.loads(text), name)]
    elif name.endswith(MARKED):
        found = ["".join(r.lines[1:-1]) for r in regions.regions(text, name)]
    else:
        return []
    lines = {line.strip() for block in found for line in block.splitlines()}
    outside = {line.strip() for line in _outside_regions(name, text).splitlines()}  # the source gives these anyway
    return sorted(line for line in lines - outside if len(line) >= MIN_LINE and not line.startswith(("#", "<!--")))


def _outside_regions(name: str, text: str) -> str:
    """The text of a file outside its solution regions (its student version, less the prompts and blanks)."""
    if name.endswith(".ipynb"):
        book = regions.notebook_student(json.loads(text), name)
        return "\n".join("".join(c["source"]) for c in book["cells"])
    return "".join(piece for piece in regions.split(text, name) if isinstance(piece, str))


def write(out: Path = OUT, root: Path = ROOT) -> list[str]:
    """Write the student version of `root` to `out` (replacing it whole); the files written."""
    names = [name for name in source_files(root) if not instructor_only(name)]
    temporary = out.with_name(out.name + ".part")
    shutil.rmtree(temporary, ignore_errors=True)
    for name in names:
        source = root / name
        target = temporary / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(MARKED):
            atomic_write(target, student_text(name, source.read_text(encoding="utf-8")).encode("utf-8"))
        else:
            text = source.read_bytes()
            if not name.endswith(".md") and (b"BEGIN SOLUTION" in text or b"BEGIN HIDDEN" in text):  # docs show marks
                raise BuildError(f"{name}: solution marks in a file whose regions are not read (only {MARKED} files'); "
                                 "move the region or leave the file to the instructor (pyproject.toml's instructor)")
            shutil.copy2(source, target)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(temporary, out)
    return names


def verify(out: Path = OUT, root: Path = ROOT) -> list[str]:
    """What is wrong with the student version in `out` as one of `root`: [] when nothing."""
    problems = []
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    texts = {name: (out / name).read_text(encoding="utf-8", errors="replace") for name in written}
    for name in source_files(root):
        if instructor_only(name):
            if name in written:
                problems.append(f"{name} is the instructor's, yet in the student version")
            continue
        source = (root / name).read_text(encoding="utf-8", errors="replace")
        if name not in texts:
            problems.append(f"{name} is missing from the student version")
            continue
        if name.endswith(".ipynb"):
            book, student = json.loads(source), json.loads(texts[name])
            if [c["source"] for c in regions.notebook_student(book, name)["cells"]] != \
                    [c["source"] for c in student["cells"]]:
                problems.append(f"{name}: the student version differs from the source outside its answers")
        elif name.endswith(MARKED):
            try:
                if regions.put_back(texts[name], source, name) != source:
                    problems.append(f"{name}: put back, the student version is not the source")
            except regions.RegionError as exc:
                problems.append(str(exc))
        for line in solution_lines(name, source):
            holders = [other for other, text in texts.items() if line in text]
            if holders:
                problems.append(f"a line of a solution region of {name} is in the student version's "
                                f"{', '.join(holders)}: {line[:80]}")
    return problems


def put_back_all(out: Path, into: Path, root: Path = ROOT) -> None:
    """A copy of the student version in `out` at `into`, every region put back from `root` (an answer cell replaced
    by the source's Markdown, as a student replaces it): the source again, but for the instructor's files."""
    shutil.copytree(out, into, ignore=shutil.ignore_patterns("build", "*.pdf", "*.zip", ".venv"))
    for name in source_files(root):
        if name.endswith(MARKED) and not instructor_only(name):
            source = (root / name).read_text(encoding="utf-8")
            done = source if name.endswith(".ipynb") else regions.put_back((into / name).read_text(encoding="utf-8"),
                                                                            source, name)
            (into / name).write_text(done, encoding="utf-8")


def run_own(out: Path, target: str, python: str) -> subprocess.CompletedProcess:
    """The student version's own `make <target>`, run with `python` (an environment that has the requirements)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDT4265_") and k not in ("PY", "PARAMS", "SEED")}
    env |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ARGS": "-p no:cacheprovider"}  # nothing left behind in it
    return subprocess.run([sys.executable, str(out / "make.py"), target, f"PY={python}"], cwd=out, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


def make_student(out: Path = OUT) -> None:
    """Write the student version, verify it, run its tests and checks; BuildError saying what failed."""
    if not any(solution_lines(name, (ROOT / name).read_text(encoding="utf-8")) for name in source_files()
               if name.endswith(MARKED) and not instructor_only(name)):
        raise BuildError("no solution marks in this folder's files: it is a student version already (make student is "
                         "the instructor's, run in the source)")
    names = write(out)
    problems = verify(out)
    if problems:
        raise BuildError("the student version is not right:\n  " + "\n  ".join(problems))
    left = blanks(out, [name for name in names if name.endswith(".py")])
    answers = [task for name in names if name.endswith(".ipynb")
               for task in regions.pending_answers(json.loads((out / name).read_text(encoding="utf-8")))]
    say(f"student version: {len(names)} files in {out}; left to the student: {len(left)} pieces of code and "
        f"{len(answers)} written answers. Verified: put back, it is this source; no line of a solution is in it")
    for target in ("test", "check"):
        say(f"its own make {target} ...")
        done = run_own(out, target, sys.executable)
        if done.returncode != 0:
            raise BuildError(f"the student version's make {target} failed (exit {done.returncode}):\n"
                             f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
        if target == "check":
            print(done.stdout.rstrip())
    say(f"the student version is in {out}: hand out the folder (or a zip of it)")


if __name__ == "__main__":  # make lint: `python -m tools.student lint`, the solution marks pair up in every file
    wrong = regions.problems(ROOT, source_files())
    print("\n".join(wrong) or "solution marks: every BEGIN has its END", file=sys.stderr if wrong else sys.stdout)
    sys.exit(1 if wrong else 0)
