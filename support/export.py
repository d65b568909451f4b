"""nbconvert's side of the report's exports: File > Save and Export Notebook As in JupyterLab, `jupyter nbconvert`,
and the build's PDF routes all write the answers in through RenderAnswers. support/jupyter/ configures Jupyter to
use it (`make setup` points .venv's Jupyter there).
"""

from __future__ import annotations

import json

import bleach
from bleach.css_sanitizer import CSSSanitizer
from nbconvert.preprocessors import Preprocessor
from nbformat import from_dict
from traitlets import Bool, Integer

from support.inline import ExpressionError, evaluate, render, unevaluated

# what a Markdown cell renders to, and what nbconvert's own sanitizer (bleach's inline tags only) escapes: with the
# export dialog's "sanitize" ticked every paragraph would show as literal <p> tags
BLOCK_TAGS = {"p", "div", "span", "pre", "code", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "br", "ul", "ol", "li",
              "blockquote", "table", "thead", "tbody", "tr", "th", "td", "em", "strong", "sub", "sup", "img", "a"}


def clean_html(element) -> str:
    """nbconvert's clean_html filter, with the block elements Markdown renders to allowed (scripts, styles and event
    handlers still go)."""
    element = element.decode() if isinstance(element, bytes) else str(element)
    attributes = {**bleach.ALLOWED_ATTRIBUTES, "*": ["class", "id"], "img": ["src", "alt"],
                  "th": ["align", "style"], "td": ["align", "style"]}
    return bleach.clean(element, tags=set(bleach.ALLOWED_TAGS) | BLOCK_TAGS, attributes=attributes,
                        protocols=[*bleach.ALLOWED_PROTOCOLS, "data"], css_sanitizer=CSSSanitizer())


class RenderAnswers(Preprocessor):
    """The report's inline expressions written in from the values the last run stored, branches that do not hold
    left out, the title cell made the title (support/inline.render). A notebook whose values are missing (not run,
    or edited since) is run first when `execute_missing`, in its own folder. Other notebooks pass as they are."""

    enabled = Bool(True).tag(config=True)
    execute_missing = Bool(True, help="Run the notebook when values are missing, instead of failing").tag(config=True)
    timeout = Integer(600, help="Seconds a cell may run when the notebook is run first").tag(config=True)

    def preprocess(self, nb, resources):
        if (resources or {}).get("output_extension") == ".py":  # a script export: code only, nothing to run
            return nb, resources
        book = json.loads(json.dumps(nb))
        missing = unevaluated(book)
        if missing and self.execute_missing:
            book = json.loads(json.dumps(run_with_answers(nb, resources, self.timeout)))
        elif missing:
            raise ExpressionError(f"{len(missing)} values are missing (first: {missing[0]}): Run All, save, then "
                                  "export")
        # LaTeX prints metadata.title as the title; an HTML or Markdown page would show none: the cell stays
        title_cell = (resources or {}).get("output_extension") not in (".tex", ".pdf")
        return from_dict(render(book, title_cell=title_cell)), resources


def run_with_answers(nb, resources: dict, timeout: int):
    """The notebook executed in its folder, its Markdown cells' expressions evaluated in order as JupyterLab does."""
    from nbclient import NotebookClient  # only when a notebook must run
    from nbclient.exceptions import CellExecutionError  # with it

    class AnswersClient(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type == "markdown":
                await evaluate(self, cell)
                return cell
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    path = (resources or {}).get("metadata", {}).get("path") or "."
    book = from_dict(json.loads(json.dumps(nb)))
    try:
        AnswersClient(book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": path}}).execute()
    except CellExecutionError as exc:  # the error's last line says what to do (a ResultsError: which notebook to run)
        raise ExpressionError(f"the notebook could not run: {exc.ename}: {exc.evalue}") from None
    return book
