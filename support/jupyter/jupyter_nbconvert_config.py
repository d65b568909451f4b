"""Jupyter's exports for this project: File > Save and Export Notebook As in JupyterLab, and `jupyter nbconvert`.

Read by nbconvert and by the Jupyter server (jupyter_server_config.py loads this file) wherever this folder is on
Jupyter's config path: `make setup` writes a line into .venv/etc/jupyter that loads it, and `make lab` also sets
JUPYTER_CONFIG_PATH to it. report.ipynb then exports as the report: its answers' values written in (support/export.py),
code cells tagged remove-input without their code, the title cell as the title, through a LaTeX template that
pandoc's tables need.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: support/export.py must import from anywhere
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pypandoc  # noqa: E402
from nbconvert.exporters.exporter import Exporter  # noqa: E402

from support.inline import ExpressionError  # noqa: E402


def one_line(kind, error, traceback, default=sys.excepthook):
    """`jupyter nbconvert` on a report that cannot be exported (no results yet, a value that failed): the one line
    that says what to do, not nbconvert's frames. Other errors as Python prints them."""
    if isinstance(error, ExpressionError):
        sys.stderr.write(f"error: {error}\n")
    else:
        default(kind, error, traceback)


sys.excepthook = one_line

# nbconvert's LaTeX and PDF exports start `pandoc`: the pypandoc-binary wheel's, for every Jupyter that reads this
# file (`jupyter nbconvert` in the activated .venv, JupyterLab however started), with no pandoc on the system
os.environ["PATH"] = os.pathsep.join([str(Path(pypandoc.get_pandoc_path()).parent), os.environ.get("PATH", "")])

c = get_config()  # noqa: F821 (traitlets gives config files this function)
# the answers written in first: a notebook run here (its values were missing) gets its figures extracted as any other
c.TemplateExporter.default_preprocessors = ["support.export.RenderAnswers",
                                            *Exporter.class_traits()["default_preprocessors"].default()]
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
c.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
for exporter in ("LatexExporter", "PDFExporter"):
    c[exporter].extra_template_basedirs = [str(ROOT / "support" / "jupyter" / "templates")]
    c[exporter].template_name = "report"
# with the export dialog's "sanitize" ticked (its default), nbconvert's own filter escapes every paragraph
c.HTMLExporter.filters = {"clean_html": "support.export.clean_html"}
# Exporters that cannot work here are not offered (File > Save and Export Notebook As lists what is enabled): WebPDF
# needs a Chromium that Playwright downloads from outside PyPI, Qt PDF and PNG need PyQtWebEngine
for exporter in ("WebPDFExporter", "QtPDFExporter", "QtPNGExporter"):
    c[exporter].enabled = False
