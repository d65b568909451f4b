"""The build's failures: no LaTeX, a failing notebook, a LaTeX error. Each stops with a clear message and
leaves the last good report.pdf. Run against a copy of the Makefile in a temporary folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
GOOD_PDF = b"%PDF-1.5 the last good report"
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def project(tmp_path):
    """A folder with the Makefile, stand-ins for the venv and the data, and a report.pdf from a good build."""
    for name in ("Makefile", "params.py", "experiments.py", "mnist.py", "trainer.py", "utils.py", "fileio.py"):
        shutil.copy(ROOT / name, tmp_path)
    (tmp_path / "report.pdf").write_bytes(GOOD_PDF)
    for name in ("mnist.py", "requirements.txt"):  # older than the stamps below: nothing to redo
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (1_000_000, 1_000_000))
    for stamp in ("venv-ready", "build/.data-verified"):
        (tmp_path / stamp).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / stamp).write_text("")
    return tmp_path


def make(folder, *args):
    """Run make in `folder` with this interpreter as the venv's; (exit code, stdout + stderr)."""
    variables = [f"PY={sys.executable}", f"VENV_STAMP={folder / 'venv-ready'}"]
    proc = subprocess.run(["make", "-C", str(folder), *args, *variables], capture_output=True, text=True,
                          env={**os.environ, "MAKEFLAGS": ""}, stdin=subprocess.DEVNULL, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def write_notebook(path, cells):
    book = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, path)


def test_missing_latex_stops_before_anything_is_built(project):
    code, output = make(project, "report", "XELATEX=no-such-xelatex", "AUTO_INSTALL=no")
    assert code != 0
    assert "missing: no-such-xelatex" in output and "Nothing was built" in output
    for platform in ("apt-get install --no-install-recommends pandoc texlive-xetex", "dnf install", "brew install",
                     "conda install"):
        assert platform in output
    assert not (project / "build" / "notebooks").exists()  # no notebook started
    assert (project / "report.pdf").read_bytes() == GOOD_PDF


@pytest.mark.notebooks
def test_a_failing_notebook_stops_the_build_with_its_traceback(project):
    write_notebook(project / "task2.ipynb", [
        new_code_cell("learning_rate = 0.05", metadata={"tags": ["parameters"]}),
        new_code_cell("raise ValueError(f'learning_rate must be positive, received {-learning_rate}')"),
    ])
    results = project / "build" / "results" / "task2.json"
    results.parent.mkdir(parents=True)
    results.write_text('{"the": "last good results"}')
    os.utime(results, (1_000_000, 1_000_000))  # older than the notebook: make reruns it
    code, output = make(project, "build/results/task2.json", "LIBRARY=")
    assert code != 0
    assert "raise ValueError(f'learning_rate must be positive" in output  # the cell
    assert "ValueError: learning_rate must be positive, received -0.05" in output  # its traceback
    assert results.read_text() == '{"the": "last good results"}'
    assert (project / "report.pdf").read_bytes() == GOOD_PDF


@pytest.mark.notebooks
@pytest.mark.skipif(shutil.which("xelatex") is None, reason="needs xelatex (make tex)")
def test_a_latex_error_shows_the_log_lines_and_keeps_the_last_pdf(project):
    write_notebook(project / "build" / "notebooks" / "report.ipynb", [
        new_markdown_cell("# Task 1\n\nA formula with a typo: $\\frac{1}{2} \\lamda w$."),
    ])
    for name in ("report.ipynb", "results.py", "experiments.py", "report.pdf"):  # older than the executed copy
        (project / name).touch()
        os.utime(project / name, (1_000_000, 1_000_000))
    code, output = make(project, "report.pdf", "TASK_RESULTS=")
    assert code != 0
    assert "xelatex failed" in output and "! Undefined control sequence" in output
    assert "full log: build/pdf/report.log" in output and (project / "build/pdf/report.log").exists()
    assert (project / "report.pdf").read_bytes() == GOOD_PDF
