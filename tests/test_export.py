"""The report's values written in for an export (support/inline.py, support/export.py): as JupyterLab stores them,
as nbconvert exports them with the project's settings (support/jupyter/), and as the build's prose path keeps
them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from support.export import clean_html
from support.inline import ExpressionError, expressions, render, store, stored, text, unevaluated
from tools.report import report_fingerprints, with_new_prose
from tools.venv import LAB_OVERRIDES, point_jupyter

ROOT = Path(__file__).resolve().parent.parent


def ok(plain=None, markdown=None):
    data = {"text/plain": plain if plain is not None else repr(markdown)}
    return {"status": "ok", "data": {**data, **({"text/markdown": markdown} if markdown is not None else {})},
            "metadata": {}}


def answered(source, values):
    cell = new_markdown_cell(source)
    store(cell, values)
    return cell


def book(*cells):
    nb = new_notebook(cells=[new_code_cell("x = 1", execution_count=1), *cells])
    return json.loads(nbformat.writes(nb))


def test_a_value_is_written_in_as_jupyterlab_shows_it():
    assert text(ok("'91.48%'")) == "91.48%"
    assert text(ok('"the course\'s order"')) == "the course's order"  # repr chose double quotes
    assert text(ok("7850")) == "7850" and text(ok("True")) == "True"
    assert text(ok(markdown="$\\lambda = 2$")) == "$\\lambda = 2$"  # Markdown (math) before the plain repr
    with pytest.raises(ExpressionError, match=r"(?s)t3\.gapp.*AttributeError: no gapp.*The gap is"):
        text({"status": "error", "ename": "AttributeError", "evalue": "no gapp"}, "t3.gapp", "The gap is ...")


def test_render_writes_values_in_keeps_branches_that_hold_and_takes_the_title():
    nb = book(answered("# A report\n\non {eval}`name`", {"name": ok("'MNIST'")}),
              answered("The gap is {eval}`gap`.", {"gap": ok("'0.60 percentage points'")}),
              answered("{eval}`when(True)` **It holds.**", {"when(True)": ok("''")}),
              answered("{eval}`when(False)` It does not.", {"when(False)": ok("'(not in this run) '")}))
    out = render(nb)
    assert out["metadata"]["title"] == "A report on MNIST"
    prose = [c["source"] for c in out["cells"] if c["cell_type"] == "markdown"]
    assert prose == ["The gap is 0.60 percentage points.", "**It holds.**"]
    assert all("user_expressions" not in c["metadata"] for c in out["cells"])
    page = render(nb, title_cell=True)  # for HTML, whose template prints no title: one heading
    assert [c["source"] for c in page["cells"] if c["cell_type"] == "markdown"][0] == "# A report on MNIST"


def test_render_refuses_a_missing_value_naming_it_and_leaves_other_notebooks_alone():
    nb = book(answered("The gap is {eval}`gap` and {eval}`trend`.", {"gap": ok("'1'")}))
    assert unevaluated(nb) == ["trend"]
    with pytest.raises(ExpressionError, match=r"trend.*has no value: run the notebook \(Run All\)"):
        render(nb)
    plain = book(new_markdown_cell("# Task 2\n\nNo expressions here."))
    assert render(plain) == plain and unevaluated(plain) == []
    never_ran = book(answered("{eval}`x`", {"x": ok("1")}))
    never_ran["cells"][0]["execution_count"] = None
    assert unevaluated(never_ran) == ["x = 1"]  # its code never ran: values would be stale


def test_expressions_are_found_once_each_in_order():
    assert expressions("{eval}`a` and {eval}`b.c(1)` and {eval}`a`; `code` {x}`y`") == ["a", "b.c(1)"]


def test_sanitized_html_keeps_paragraphs_and_headings_and_drops_scripts():
    html = clean_html('<h2 id="t">Task 2a</h2><p>It <strong>passes</strong>.</p><script>alert(1)</script>'
                      '<img src="data:image/png;base64,AAAA" onerror="x()">')
    assert '<h2 id="t">Task 2a</h2><p>It <strong>passes</strong>.</p>' in html
    assert "<script>" not in html and "onerror" not in html and 'src="data:image/png;base64,AAAA"' in html


def test_a_prose_edit_keeps_the_values_an_expression_edit_does_not():
    source = book(answered("Gap: {eval}`gap`.", {}))
    executed = book(answered("Gap: {eval}`gap`.", {"gap": ok("'0.60'")}))
    reworded = book(answered("The gap, training above validation: {eval}`gap`.", {}))
    assert stored(with_new_prose(executed, reworded)["cells"][1]) == {"gap": ok("'0.60'")}
    build = type("Build", (), {"dir": ROOT / "build"})()
    keys = {}
    fingerprints = [report_fingerprints(build, keys, nb) for nb in
                    (source, reworded, book(answered("Trend: {eval}`trend`.", {})))]
    assert fingerprints[0]["code"] == fingerprints[1]["code"] != fingerprints[2]["code"]
    assert fingerprints[0]["full"] != fingerprints[1]["full"]


def test_make_setup_points_the_environments_jupyter_at_the_projects_settings(tmp_path):
    """The lines `make setup` writes into .venv (here a stand-in folder) load support/jupyter/ for nbconvert and the
    server, and JupyterLab renders every cell."""
    from traitlets.config.loader import PyFileConfigLoader

    venv = tmp_path / "venv"
    point_jupyter(venv)
    for name in ("jupyter_nbconvert_config.py", "jupyter_server_config.py"):
        config = PyFileConfigLoader(name, path=str(venv / "etc" / "jupyter")).load_config()
        assert config.TemplateExporter.default_preprocessors[0] == "support.export.RenderAnswers", name
        assert config.WebPDFExporter.enabled is False and config.PDFExporter.template_name == "report"
    assert json.loads((venv / "share/jupyter/lab/settings/overrides.json").read_text()) == LAB_OVERRIDES


def test_jupyter_nbconvert_exports_an_answered_report_with_the_projects_settings(tmp_path):
    """`jupyter nbconvert --to markdown` with the project's settings on the config path: values written in, the code
    cell tagged remove-input without its code, the branch that does not hold left out."""
    nb = new_notebook(cells=[new_code_cell("from answers import when\ngap = '0.60%'", execution_count=1,
                                           metadata={"tags": ["remove-input"]}),
                             answered("# The title\n\nand its second line", {}),
                             answered("The gap is {eval}`gap`.", {"gap": ok("'0.60%'")}),
                             answered("{eval}`when(False)` Not this one.",
                                      {"when(False)": ok("'(not in this run) '")})])
    nbformat.write(nb, tmp_path / "r.ipynb")
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "support" / "jupyter")}
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "markdown", "r.ipynb", "--stdout"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "The gap is 0.60%." in proc.stdout and "Not this one" not in proc.stdout
    assert "gap = " not in proc.stdout and "{eval}" not in proc.stdout
    assert "# The title and its second line" in proc.stdout  # a page prints no title of its own: the cell stays


def test_jupyters_latex_export_finds_the_wheels_pandoc_with_none_on_the_path(tmp_path):
    """`jupyter nbconvert --to latex` (the first half of --to pdf) in the environment, with a PATH that holds its
    interpreter alone: no system pandoc. The project's settings put the pypandoc-binary wheel's pandoc first."""
    nb = new_notebook(cells=[new_code_cell("x = 1", execution_count=1), answered("A *Markdown* answer: $x^2$.", {})])
    nbformat.write(nb, tmp_path / "r.ipynb")
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "support" / "jupyter"),
           "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "latex", "r.ipynb", "--stdout"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\\emph{Markdown} answer: \\(x^2\\)" in proc.stdout


def test_only_the_exports_that_work_here_are_offered():
    """File > Save and Export Notebook As lists nbconvert's enabled exporters: not WebPDF (a browser download), nor
    Qt PDF and PNG (PyQtWebEngine), which gave a 500 page."""
    from nbconvert.exporters import get_export_names
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("jupyter_nbconvert_config.py", path=str(ROOT / "support" / "jupyter")).load_config()
    offered = set(get_export_names(config))
    assert {"pdf", "html", "latex", "markdown"} <= offered and not offered & {"webpdf", "qtpdf", "qtpng"}, offered


def test_a_report_that_cannot_be_exported_says_why_in_one_line(tmp_path):
    """`jupyter nbconvert` on a report whose values are missing (here: not run, and not allowed to run): the line that
    says what to do, not nbconvert's frames."""
    nb = new_notebook(cells=[answered("The gap is {eval}`gap`.", {})])
    nbformat.write(nb, tmp_path / "r.ipynb")
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "support" / "jupyter")}
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "markdown", "r.ipynb", "--stdout",
                           "--RenderAnswers.execute_missing=False"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("[NbConvertApp]")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert errors == ["error: 1 values are missing (first: gap): Run All, save, then export"], proc.stderr


def test_an_untaken_branch_is_greyed_out_in_jupyterlab_and_left_out_of_every_export():
    """when(False) shows in JupyterLab as its HTML (a mark, and a style that greys out the cell that holds it); an
    export reads its text and drops the branch."""
    from answers import NOT_THIS_RUN, when

    mark = when(False)
    assert mark == NOT_THIS_RUN and when(True) == ""
    assert ".jp-MarkdownCell:has(.tdt4265-untaken)" in mark._repr_html_() and "opacity" in mark._repr_html_()
    shown = render(book(answered("{eval}`when(False)` Not this one.", {"when(False)": ok(repr(mark))}),
                        answered("{eval}`when(True)` This one.", {"when(True)": ok(repr(when(True)))})))
    assert [c["source"] for c in shown["cells"] if c["cell_type"] == "markdown"] == ["This one."]


def test_a_note_for_jupyterlab_readers_is_in_the_report_and_left_out_of_its_exports():
    """The report says, where a student reads it, how an edited value is shown again; no export shows the note."""
    report = json.loads((ROOT / "report.ipynb").read_text())
    notes = [c for c in report["cells"] if "remove-cell" in c["metadata"].get("tags", [])]
    assert len(notes) == 1 and "run its cell twice" in "".join(notes[0]["source"])
    note = new_markdown_cell("A note.", metadata={"tags": ["remove-cell"]})
    shown = render(book(answered("# Title", {}), note, answered("The gap is {eval}`gap`.", {"gap": ok("'0.60%'")})))
    assert [c["source"] for c in shown["cells"] if c["cell_type"] == "markdown"] == ["The gap is 0.60%."]
