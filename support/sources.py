"""What a notebook's results depend on: its code cells and the project's modules it imports, found by rule.

A module counts when a notebook imports it, or a module that counts does, at any depth: `import x`, `from x import
y`, `from x.y import z` and imports inside functions alike, wherever `x` is a module or package of the project (a
file under its root). A new module imported by a notebook counts without editing a list.
"""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REREAD_WAITS = (0.1, 0.3, 0.6)  # seconds before each new read of a notebook that does not parse


class NotebookError(ValueError):
    """A notebook file that does not parse as a notebook, read several times over a second."""


def read_notebook(path: str | Path) -> dict:
    """A notebook's JSON. A file that does not parse, as a save caught half-written looks (`cp` and many editors
    write in place), is read again after a short wait, a few times; NotebookError naming it if it still does not."""
    for wait in REREAD_WAITS:
        try:
            return _parse_notebook(Path(path))
        except NotebookError:
            time.sleep(wait)
    return _parse_notebook(Path(path))


def _parse_notebook(path: Path) -> dict:
    try:
        book = json.loads(path.read_bytes().decode("utf-8"))
        problem = None if isinstance(book, dict) and isinstance(book.get("cells"), list) else "no list of cells"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        problem = str(exc) if len(str(exc)) <= 80 else str(exc)[:77] + "..."
    if problem:
        raise NotebookError(f"{path.name} does not read as a notebook ({problem}): a save caught half-way, or a "
                            f"damaged file? Save it again from Jupyter (or `git checkout {path.name}` to take back the "
                            "committed one)")
    return book


def notebook_code(path: str | Path, skip_tags: frozenset[str] = frozenset()) -> list[str]:
    """The sources of a notebook's code cells, in order, leaving out cells tagged with any of `skip_tags`."""
    cells = read_notebook(path)["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells
            if c["cell_type"] == "code" and not skip_tags & set(c.get("metadata", {}).get("tags", []))]


def imported_names(code: str) -> set[str]:
    """Dotted names that `code` imports (`a.b` for `from a import b`, which may be a module). Read once per content in
    a process (a build asks for every notebook's modules several times)."""
    if code not in _IMPORTED:
        _IMPORTED[code] = _parse_imports(code)
    return _IMPORTED[code]


_IMPORTED: dict[str, set[str]] = {}


IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)|import[ \t]+([^\n#;]*))", re.M)


def _parse_imports(code: str) -> set[str]:
    """The names of every `import` and `from ... import` statement, at the top or in a function, read line by line
    (ten times faster than parsing; a name that only looks imported, in a string, at worst counts one module more)."""
    names = set()
    for module, imported, plain in IMPORT.findall(code):
        if module and not module.startswith("."):
            names.add(module)
            names.update(f"{module}.{part.split()[0]}" for part in imported.strip("()").replace("\\\n", " ").split(",")
                         if part.split())
        elif plain:
            names.update(part.split()[0] for part in plain.split(",") if part.split())
    return names


def module_file(name: str, root: Path) -> list[Path]:
    """The project files that importing the dotted `name` runs: each package's __init__.py on the way and the
    module itself; [] when `name` is not the project's."""
    parts, files = name.split("."), []
    for depth in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:depth])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
            break
        else:
            break
    return files


def project_modules(*paths: str | Path, root: str | Path = ROOT) -> list[Path]:
    """The project's module files that the notebooks and modules in `paths` import, transitively, sorted."""
    root = Path(root).resolve()
    seen: set[Path] = set()
    files: dict[str, list[Path]] = {}  # name -> module_file(name): many modules import the same names
    todo = [Path(p).resolve() for p in paths]
    while todo:
        path = todo.pop()
        code = "\n".join(notebook_code(path)) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
        for name in imported_names(code):
            if name not in files:
                files[name] = module_file(name, root)
            for file in files[name]:
                if file not in seen:
                    seen.add(file)
                    todo.append(file)
    return sorted(seen)


RUN_OPTIONS = frozenset({"progress"})  # names of a parameters cell that change how a run shows, not what it computes


def notebook_parameters(path: str | Path) -> dict:
    """{name: value} of the assignments in a notebook's cell tagged "parameters" (the notebook's defaults, as
    papermill reads them); ValueError naming the line when a value is not a literal (a number, string, list, None)."""
    path = Path(path)
    cells = [c for c in read_notebook(path)["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path.name} needs exactly one cell tagged 'parameters', it has {len(cells)}")
    source = "".join(cells[0]["source"])
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{path.name}'s parameters cell does not parse (line {exc.lineno}: {exc.msg})") from None
    values = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"{path.name}'s parameters cell, line {node.lineno}: only `name = value` lines, received "
                             f"{ast.get_source_segment(source, node)!r}")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{path.name}'s parameters cell, line {node.lineno}: "
                             f"{ast.get_source_segment(source, node)!r} is not a literal value; write the value "
                             "itself (a number, a string, a list such as [2, 0.2], None)") from None
    return values
