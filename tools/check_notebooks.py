"""Notebooks are committed clean: no outputs, no execution counts. `--fix` clears them in place.

python tools/check_notebooks.py [--fix] [NOTEBOOK ...]   (default: every *.ipynb at the top level)
Exit status 1 lists the notebooks that carry outputs (without --fix).
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def dirty_cells(book) -> list[int]:
    return [i for i, c in enumerate(book.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]


def main(argv: list[str]) -> int:
    fix = "--fix" in argv
    paths = [Path(a) for a in argv if a != "--fix"] or sorted(ROOT.glob("*.ipynb"))
    dirty = []
    for path in paths:
        book = nbformat.read(path, as_version=4)
        cells = dirty_cells(book)
        if not cells:
            continue
        if fix:
            for i in cells:
                book.cells[i].outputs, book.cells[i].execution_count = [], None
            nbformat.write(book, path)
            print(f"{path}: cleared the outputs of {len(cells)} cells")
        else:
            dirty.append(f"{path}: cells {cells} carry outputs or execution counts")
    if dirty:
        print("\n".join(dirty) + "\nClear them: python tools/check_notebooks.py --fix", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
