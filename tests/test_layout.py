"""The repository's rooms: the assignment at the root, the machinery in packages, arrows one way."""

import ast
import sys
import tomllib
from pathlib import Path

from support.project import HANDIN, files
from support.sources import imported_names, module_file

ROOT = Path(__file__).resolve().parent.parent
MODULES = [ROOT / name for name in files(HANDIN) if name.endswith(".py") and not name.startswith(("tests/", "bench/"))]
LAYERS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["tdt4265"]["layers"]
ASSIGNMENT_MAY_IMPORT = {"numpy", "matplotlib"}  # beside the standard library and the assignment's own modules


def imports_of(path: Path) -> set[Path]:
    """The project's module files that `path` imports (at its top or inside a function)."""
    return {file for name in imported_names(path.read_text()) for file in module_file(name, ROOT)} - {path}


def floor(path: Path) -> int:
    """The index of the layer (pyproject.toml's [tool.tdt4265] layers) that holds `path`."""
    name = path.relative_to(ROOT).as_posix()
    found = [i for i, layer in enumerate(LAYERS) for room in layer if name == room or name.startswith(room + "/")]
    assert len(found) == 1, f"{name} is in {len(found)} layers: list it in pyproject.toml's [tool.tdt4265] layers"
    return found[0]


def test_every_import_points_to_its_own_floor_or_one_below():
    """The build (tools/) -> the glue (experiments, answers, plots, summaries, support/) -> the assignment (utils,
    trainer, mnist): no module imports one on a floor above its own, so support/ never imports tools/."""
    upward = [f"{p.relative_to(ROOT)} -> {t.relative_to(ROOT)}" for p in MODULES for t in imports_of(p)
              if floor(t) > floor(p)]
    assert not upward, "imports that point up: " + ", ".join(upward)


def test_the_assignment_imports_the_standard_library_numpy_and_matplotlib_alone():
    assignment = [p for p in MODULES if floor(p) == 0]
    assert {p.name for p in assignment} >= {"utils.py", "trainer.py", "mnist.py"}
    allowed = sys.stdlib_module_names | ASSIGNMENT_MAY_IMPORT
    foreign = [f"{p.name}: {name}" for p in assignment for name in imported_names(p.read_text())
               if not module_file(name, ROOT) and name.split(".")[0] not in allowed]
    assert not foreign, foreign


def test_no_import_circle():
    graph = {path: imports_of(path) for path in MODULES}
    done, path_so_far = set(), []

    def visit(node: Path) -> None:
        if node in path_so_far:
            circle = path_so_far[path_so_far.index(node):] + [node]
            raise AssertionError("import circle: " + " -> ".join(p.relative_to(ROOT).as_posix() for p in circle))
        if node in done:
            return
        path_so_far.append(node)
        for target in graph.get(node, ()):
            visit(target)
        path_so_far.pop()
        done.add(node)

    for node in graph:
        visit(node)


def test_no_module_imports_the_entry_script():
    assert not [p.relative_to(ROOT).as_posix() for p in MODULES if ROOT / "make.py" in imports_of(p)]


def test_the_root_shows_the_assignment_and_modules_stay_small():
    at_root = [p.name for p in MODULES if p.parent == ROOT]
    assert len(at_root) <= 8, at_root
    long = {p.relative_to(ROOT).as_posix(): n for p in MODULES if p.name != "utils.py"
            and (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_an_import_inside_a_function_says_why():
    """Imports go at the top, except a slow or optional one, whose line carries a comment saying so."""
    unexplained = []
    for path in MODULES:
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    line = lines[inner.lineno - 1] if isinstance(inner, (ast.Import, ast.ImportFrom)) else "#"
                    if "#" not in line:
                        unexplained.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {line.strip()}")
    assert not unexplained, "\n".join(unexplained)


def test_the_machinery_names_no_task():
    """The tasks are pyproject.toml's list alone: nothing under tools/ or support/ names one (adding a task is its
    notebook and a line there)."""
    import re

    named = [f"{p.relative_to(ROOT)}:{n}" for p in MODULES if p.parts[len(ROOT.parts)] in ("tools", "support")
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\btask[0-9]", line)]
    assert not named, named


def test_the_targets_are_listed_once():
    """tools/cli.py's TARGETS names them (the Makefile passes any name on); each is a function target_<name> of the
    build, and no such function lacks its entry."""
    import tools.targets
    from tools.cli import TARGETS

    handled_before_the_environment = {"help", "clean", "distclean"}
    functions = {name.removeprefix("target_").replace("_", "-") for name in dir(tools.targets)
                 if name.startswith("target_") and callable(getattr(tools.targets, name))}
    assert functions == set(TARGETS) - handled_before_the_environment
    rules = [line for line in (ROOT / "Makefile").read_text().splitlines() if ":" in line and not line.startswith("#")]
    assert not [line for line in rules if any(line.startswith(f"{name}:") or f" {name} " in line for name in TARGETS)]
