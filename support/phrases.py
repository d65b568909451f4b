"""The words and marks the report's answers are made of (answers.py): Markdown values, the mark of a branch a run
does not take, the mark of a value that waits for a task's code, and the phrases numbers are said in."""

from __future__ import annotations

NOT_THIS_RUN = "(not in this run) "
NONE = "none"  # a value whose answer does not apply to this run: its branch is left out

class Md(str):
    """Text in Markdown (math, emphasis, a table): JupyterLab renders it, the exports write it in as it is."""

    def _repr_markdown_(self) -> str:
        return str(self)


class Untaken(str):
    """The mark of a branch this run does not take. Exports read its text and leave the branch out; JupyterLab shows
    its HTML, which greys the whole cell out (once the notebook has run, when JupyterLab trusts its outputs; before,
    the mark alone)."""

    def _repr_html_(self) -> str:
        return ('<span class="tdt4265-untaken"><em>(not in this run)</em></span><style>.jp-MarkdownCell:has('
                '.tdt4265-untaken) .jp-Cell-inputArea { opacity: 0.4; }</style>')


class Pending(str):
    """A value that waits for a task's code (answers' __getattr__): its attributes are itself, and it is false."""

    def __getattr__(self, name: str) -> Pending:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __bool__(self) -> bool:
        return False

    def __call__(self, *args, **kwargs) -> Pending:
        return self


def when(condition: bool) -> str:
    """The start of a branch cell: '' when `condition` holds, else a mark that this run's report leaves it out."""
    return "" if condition else Untaken(NOT_THIS_RUN)


def no(verdict: bool) -> bool:
    """`not verdict` for a branch's condition, but a verdict still pending stays pending (false): `not` would make
    the branch for the other outcome hold."""
    return verdict if isinstance(verdict, Pending) else not verdict


def pct(x: float, digits: int = 2) -> str:
    """0.9148 -> '91.48%'."""
    return f"{100 * x:.{digits}f}%"


def pp(x: float, digits: int = 2) -> str:
    """0.0093 -> '0.93 percentage points'."""
    return f"{100 * x:.{digits}f} percentage points"


def steps_phrase(steps: list[int]) -> str:
    """'step 42', 'steps 42 and 84', 'steps 42, 84 and 126'; NONE for no steps."""
    steps = [f"{s:,}" for s in steps]
    if not steps:
        return NONE
    if len(steps) == 1:
        return f"step {steps[0]}"
    return f"steps {', '.join(steps[:-1])} and {steps[-1]}"


def count_phrase(n: int, noun: str) -> str:
    """'no jumps', '1 jump', '3 jumps'."""
    return f"no {noun}s" if n == 0 else f"{n} {noun}{'' if n == 1 else 's'}"


def epochs_text(params: dict) -> str:
    """'50 epochs', or 'up to 50 epochs with early stopping (patience 10 checks)'."""
    if params.get("early_stopping_patience") is None:
        return f"{params['num_epochs']} epochs"
    return (f"up to {params['num_epochs']} epochs with early stopping "
            f"(patience {params['early_stopping_patience']} checks)")
