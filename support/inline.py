"""The values in report.ipynb's Markdown: MyST inline expressions, {eval}`t3.gap`, evaluated by the kernel after the
cells above them ran, stored as the jupyterlab-myst extension stores them (the cell's metadata.user_expressions,
which JupyterLab shows), and written into the Markdown for an export.

A Markdown cell that starts with {eval}`when(...)` is a branch: it is kept (without that mark) when the expression
gives '', and left out otherwise (answers.when). A Markdown cell that is one level-1 heading, with at most one line
under it, before any other Markdown, is the document's title: a heading "Report" over the line "on MNIST" make
"Report on MNIST". The marks around the instructor's answers (`<!-- BEGIN SOLUTION Task 3d: ... -->`, tools/regions.py)
are comments: left out. Standard library only: the build's runner and nbconvert (support/export.py) use it.
"""

from __future__ import annotations

import ast
import re

EVAL = re.compile(r"\{eval\}`([^`]+)`")
BRANCH = re.compile(r"\A\s*\{eval\}`(when\([^`]*\))`[ \t]*\n?")
# a line that marks an answer's start or end in the instructor's source (tools/regions.py)
SOLUTION_MARK = re.compile(r"^<!-- (?P<kind>BEGIN|END) SOLUTION(?: Task (?P<task>\d[a-z])(?:: (?P<prompt>.*?))?)? -->$")
TITLE = re.compile(r"\A#[ \t]+(\S[^\n]*?)[ \t]*(?:\n[ \t]*\n?[ \t]*([^\n#]\S[^\n]*?)[ \t]*)?\Z")


class ExpressionError(Exception):
    """An inline expression failed, or has no value yet: the message names it and its cell."""


def expressions(source: str) -> list[str]:
    """The inline expressions of a Markdown cell's source, in order, each once."""
    return list(dict.fromkeys(EVAL.findall(source)))


def stored(cell: dict) -> dict[str, dict]:
    """{expression: its result (a kernel's user_expressions entry)} as the cell's metadata holds them."""
    return {entry["expression"]: entry["result"] for entry in cell.get("metadata", {}).get("user_expressions", [])
            if isinstance(entry, dict) and "expression" in entry and "result" in entry}


def store(cell: dict, results: dict[str, dict]) -> None:
    """Keep the results in the cell's metadata as jupyterlab-myst does; none: the key goes."""
    if results:
        cell.setdefault("metadata", {})["user_expressions"] = [{"expression": e, "result": r}
                                                               for e, r in results.items()]
    else:
        cell.get("metadata", {}).pop("user_expressions", None)


def unevaluated(book: dict) -> list[str]:
    """The expressions of the notebook's Markdown cells that have no stored value, and code cells that never ran: a
    notebook that was not run (Run All) since they were written. Empty when every value is there."""
    missing = []
    for cell in book["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            have = stored(cell)
            missing += [e for e in expressions(source) if e not in have]
        elif cell["cell_type"] == "code" and source.strip() and cell.get("execution_count") is None:
            missing.append(source.splitlines()[0])
    return missing if any(expressions("".join(c["source"])) for c in book["cells"]
                           if c["cell_type"] == "markdown") else []


def text(result: dict, expression: str = "?", cell_source: str = "") -> str:
    """The Markdown an expression's result stands for: its text/markdown, else its text/plain with a string's quotes
    taken off (as jupyterlab-myst shows it). ExpressionError for a failed expression."""
    if result.get("status") != "ok":
        raise ExpressionError(f"the expression {{eval}}`{expression}` failed: {result.get('ename', 'Error')}: "
                              f"{result.get('evalue', '')}\n    in the Markdown cell: {first_line(cell_source)}")
    data = result.get("data", {})
    if "text/markdown" in data:
        return data["text/markdown"]
    plain = data.get("text/plain", "")
    try:
        value = ast.literal_eval(plain)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return plain
    return value if isinstance(value, str) else plain


def render(book: dict, title_cell: bool = False) -> dict:
    """The notebook with its inline expressions written in from their stored values, the branches whose condition
    does not hold left out, and the title cell made metadata.title (and, with `title_cell`, kept as one heading: for
    an export whose template prints no title, HTML); ExpressionError if a value is missing or failed. A notebook
    without inline expressions comes back as it is."""
    if not any(expressions("".join(c["source"])) for c in book["cells"] if c["cell_type"] == "markdown"):
        return book
    cells, title = [], None
    for cell in book["cells"]:
        if "remove-cell" in cell.get("metadata", {}).get("tags", []):  # for JupyterLab only (a note on reading it)
            continue
        if cell["cell_type"] != "markdown":
            cells.append(cell)
            continue
        source, values = without_marks("".join(cell["source"])), stored(cell)

        def value(expression: str, source=source, values=values) -> str:
            if expression not in values:
                raise ExpressionError(f"the expression {{eval}}`{expression}` has no value: run the notebook (Run "
                                      f"All) before exporting it\n    in the Markdown cell: {first_line(source)}")
            return text(values[expression], expression, source)

        branch = BRANCH.match(source)
        if branch:
            if value(branch[1]) != "":
                continue
            source = source[branch.end():]
        source = EVAL.sub(lambda m: value(m[1]), source)
        heading = TITLE.match(source.strip())
        if title is None and heading and not any(c["cell_type"] == "markdown" for c in cells):
            title = " ".join(filter(None, heading.groups()))
            if not title_cell:
                continue
            source = f"# {title}"
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k != "user_expressions"}
        cells.append({**cell, "source": source, "metadata": metadata})
    metadata = {**book["metadata"], **({"title": title} if title else {})}
    return {**book, "metadata": metadata, "cells": cells}


def without_marks(source: str) -> str:
    """A Markdown cell's source without the lines that mark where an answer starts or ends."""
    lines = source.splitlines(keepends=True)
    return "".join(line for line in lines if not SOLUTION_MARK.match(line.strip())) if "<!--" in source else source


def first_line(source: str) -> str:
    line = source.strip().splitlines()[0] if source.strip() else ""
    return line if len(line) <= 100 else line[:97] + "..."


async def evaluate(client, cell) -> None:
    """Evaluate a Markdown cell's inline expressions in `client`'s kernel (an nbclient client, after the cells above
    ran) and store their results in the cell; ExpressionError naming the first that failed."""
    found = expressions(cell["source"])
    if not found:
        store(cell, {})
        return
    msg_id = client.kc.execute("", silent=True, store_history=False,
                               user_expressions={str(i): e for i, e in enumerate(found)})
    reply = await client.async_wait_for_reply(msg_id, cell)
    answers = (reply or {}).get("content", {}).get("user_expressions", {})
    results = {e: answers.get(str(i), {"status": "error", "ename": "NoReply", "evalue": "the kernel did not answer"})
               for i, e in enumerate(found)}
    store(cell, results)
    for expression, result in results.items():
        text(result, expression, cell["source"])  # raises for the first that failed
