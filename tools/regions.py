"""The marks that make one source three products: what a student writes, and what only the instructor keeps.

    # BEGIN SOLUTION Task 2a: <the prompt, which comment lines right below may continue>
    ...the solution...
    # END SOLUTION

in .py files and notebooks' code cells; in Markdown cells (the report's answers, possibly over several cells)
`<!-- BEGIN SOLUTION Task 3d: <prompt> -->` at a cell's start and `<!-- END SOLUTION -->` at a cell's end; and
`# BEGIN HIDDEN` ... `# END HIDDEN` around what the student version leaves out altogether (the grader's checks and
points). The student version (`student`) keeps everything else as it is: a code region becomes its prompt and
`raise NotImplementedError("Task 2a: <function> is not written yet")`, a Markdown one a cell that asks for the
answer and says so (ANSWER). `put_back` turns a student version into the source again, which make student checks.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from support import blanks
from support.inline import SOLUTION_MARK as MARKDOWN

CODE = re.compile(r"^(?P<indent>[ \t]*)# (?P<kind>BEGIN|END) (?P<what>SOLUTION|HIDDEN)"
                  r"(?: Task (?P<task>\d[a-z])(?:: (?P<prompt>.*))?)?[ \t]*$")
ANSWER = re.compile(r"<!-- ANSWER Task (?P<task>\d[a-z]): replace this cell with your answer -->")


class RegionError(ValueError):
    """Marks that do not pair up: the message names the file, the line and what is wrong."""


@dataclass
class Region:
    what: str  # SOLUTION or HIDDEN
    task: str | None
    prompt: list[str]  # the prompt's lines, the BEGIN line's first
    lines: list[str] = field(default_factory=list)  # the region's lines, its marks included
    start: int = 0  # the BEGIN line's number, from 1


def split(text: str, name: str = "<text>") -> list[str | Region]:
    """The text as plain pieces and regions, in order; RegionError if marks do not pair up or nest."""
    pieces: list[str | Region] = []
    plain: list[str] = []
    region: Region | None = None
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        mark = CODE.match(line.rstrip("\n"))
        if mark and mark["kind"] == "BEGIN":
            if region is not None:
                raise RegionError(f"{name}:{number}: a BEGIN inside the region that starts at line {region.start}")
            if mark["what"] == "SOLUTION" and not mark["task"]:
                raise RegionError(f"{name}:{number}: BEGIN SOLUTION names no task (`# BEGIN SOLUTION Task 2a: ...`)")
            pieces.append("".join(plain))
            plain = []
            region = Region(mark["what"], mark["task"], [mark["prompt"] or ""], [line], number)
        elif mark and mark["kind"] == "END":
            if region is None or region.what != mark["what"]:
                raise RegionError(f"{name}:{number}: END {mark['what']} without its BEGIN")
            region.lines.append(line)
            pieces.append(region)
            region = None
        elif region is not None:
            if len(region.lines) == len(region.prompt) and line.strip().startswith("# "):  # the prompt goes on
                region.prompt.append(line.strip()[2:])
            region.lines.append(line)
        else:
            plain.append(line)
    if region is not None:
        raise RegionError(f"{name}:{region.start}: BEGIN {region.what} without its END")
    pieces.append("".join(plain))
    return pieces


def regions(text: str, name: str = "<text>") -> list[Region]:
    return [piece for piece in split(text, name) if isinstance(piece, Region)]


def student(text: str, name: str = "<text>") -> str:
    """The student version of a .py file or a code cell's source (see the module's docstring)."""
    return "".join(piece if isinstance(piece, str) else placeholder(piece, text) for piece in split(text, name))


def _functions(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of each function in `text`, innermost last."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found.append((child.lineno, child.end_lineno, name))
                visit(child, name + ".")
    visit(tree, "")
    return sorted(found, key=lambda f: f[1] - f[0])  # the innermost (shortest) first


def placeholder(region: Region, text: str) -> str:
    """What the student version has where the source has `region` (`text`: the source, for the function's name)."""
    if region.what == "HIDDEN":
        return ""
    indent = CODE.match(region.lines[0].rstrip("\n"))["indent"]
    where = next((q for first, last, q in _functions(text) if first <= region.start <= last), "this")
    return "".join([f"{indent}# Task {region.task}: {region.prompt[0]}\n",
                    *(f"{indent}# {line}\n" for line in region.prompt[1:]),
                    f'{indent}raise NotImplementedError("{blanks.message(region.task, where)}")\n'])


def put_back(student_text: str, source: str, name: str = "<text>") -> str:
    """The student version with the source's regions put back in place of their prompts and placeholders: the source
    again. RegionError naming the line if the student version differs from the source outside its regions."""
    out, at = [], 0
    for piece in split(source, name):
        expected = piece if isinstance(piece, str) else placeholder(piece, source)
        if not student_text.startswith(expected, at):
            line = student_text.count("\n", 0, at) + 1
            raise RegionError(f"{name}:{line}: the student version differs from the source outside its regions")
        out.append(piece if isinstance(piece, str) else "".join(piece.lines))
        at += len(expected)
    if at != len(student_text):
        raise RegionError(f"{name}: the student version has more than the source beyond its last region")
    return "".join(out)


def notebook_student(book: dict, name: str) -> dict:
    """The student version of a notebook: code cells through `student`; each Markdown region (from the cell that opens
    with its BEGIN to the one that closes with its END) one cell that asks for the answer."""
    cells, region = [], None
    for index, cell in enumerate(book["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            if region is not None:
                raise RegionError(f"{name}, cell {index}: a code cell inside the answer of Task {region['task']}")
            blanked = student(source, f"{name}, cell {index}")
            cells.append(cell if blanked == source else {**cell, "source": blanked.splitlines(keepends=True)})
            continue
        lines = source.strip().splitlines() or [""]
        begin, end = MARKDOWN.match(lines[0].strip()), MARKDOWN.match(lines[-1].strip())
        if begin and begin["kind"] == "BEGIN":
            if region is not None:
                raise RegionError(f"{name}, cell {index}: a BEGIN inside the answer of Task {region['task']}")
            if not begin["task"]:
                raise RegionError(f"{name}, cell {index}: BEGIN SOLUTION names no task")
            region = {"task": begin["task"], "prompt": begin["prompt"] or "", "id": cell.get("id")}
        if region is None:
            if any(MARKDOWN.match(line.strip()) for line in lines):
                raise RegionError(f"{name}, cell {index}: a SOLUTION mark that opens no cell or closes none")
            cells.append(cell)
            continue
        if end and end["kind"] == "END":
            cells.append({"cell_type": "markdown", "id": region["id"], "metadata": {},
                          "source": answer_prompt(region["task"], region["prompt"]).splitlines(keepends=True)})
            region = None
    if region is not None:
        raise RegionError(f"{name}: the answer of Task {region['task']} has no END")
    return {**book, "cells": cells}


def answer_prompt(task: str, prompt: str) -> str:
    """The cell that asks for a written answer; the build counts it as pending while its first line is there."""
    return (f"<!-- ANSWER Task {task}: replace this cell with your answer -->\n"
            f"**Task {task}, your answer.** *{prompt}*")


def pending_answers(book: dict) -> list[str]:
    """The tasks whose answer cell in this notebook still asks for the answer (see answer_prompt)."""
    return [m["task"] for cell in book["cells"] if cell["cell_type"] == "markdown"
            for m in ANSWER.finditer("".join(cell["source"]))]


def notebook_regions(book: dict, name: str) -> list[tuple[str, str]]:
    """(task, text) of every solution region of a notebook: code regions, and Markdown answers whole."""
    found, answer = [], None
    for index, cell in enumerate(book["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            found += [(r.task, "".join(r.lines)) for r in regions(source, f"{name}, cell {index}") if r.task]
            continue
        lines = source.strip().splitlines() or [""]
        begin, end = MARKDOWN.match(lines[0].strip()), MARKDOWN.match(lines[-1].strip())
        if begin and begin["kind"] == "BEGIN":
            answer = (begin["task"], [])
        if answer is not None:
            answer[1].append(source)
            if end and end["kind"] == "END":
                found.append((answer[0], "\n".join(answer[1])))
                answer = None
    return found


def dumps(book: dict) -> str:
    return json.dumps(book, indent=1, ensure_ascii=False) + "\n"


def problems(root, names: list[str]) -> list[str]:
    """What is wrong with the marks of the files `names` under `root` (RegionError messages): [] when they pair up."""
    found = []
    for name in names:
        if not name.endswith((".py", ".toml", ".ipynb")):
            continue
        text = (root / name).read_text(encoding="utf-8")
        try:
            if name.endswith(".ipynb"):
                notebook_student(json.loads(text), name)
            else:
                split(text, name)
        except RegionError as exc:
            found.append(str(exc))
    return found

