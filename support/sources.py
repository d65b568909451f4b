"""What a notebook's results depend on: its code cells and the project's modules it imports, found by rule.

A module counts when a notebook imports it, or a module that counts does, at any depth: `import x`, `from x import
y`, `from x.y import z` and imports inside functions alike, wherever `x` is a module or package of the project (a
file under its root). A new module imported by a notebook counts without editing a list.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebook_code(path: str | Path, skip_tags: frozenset[str] = frozenset()) -> list[str]:
    """The sources of a notebook's code cells, in order, leaving out cells tagged with any of `skip_tags`."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells
            if c["cell_type"] == "code" and not skip_tags & set(c.get("metadata", {}).get("tags", []))]


def imported_names(code: str) -> set[str]:
    """Dotted names that `code` imports (`a.b` for `from a import b`, which may be a module); IPython's `%` and `!`
    lines left out."""
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
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
    todo = [Path(p).resolve() for p in paths]
    while todo:
        path = todo.pop()
        code = "\n".join(notebook_code(path)) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
        for name in imported_names(code):
            for file in module_file(name, root):
                if file not in seen:
                    seen.add(file)
                    todo.append(file)
    return sorted(seen)
