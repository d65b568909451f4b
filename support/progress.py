"""Progress bars that tell the truth: each names its run, a run that early stopping ends closes its bar as finished,
and only an interrupted or failed run leaves it short (red, in a notebook). tqdm draws them: a widget in Jupyter,
text in a terminal. A headless build asks for none."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Bar:
    """One labelled bar over `total` units (steps of a run, or runs of a sweep)."""

    def __init__(self, label: str, total: int, unit: str = "step"):
        from tqdm.auto import tqdm  # a bar is asked for only in Jupyter or a terminal: a build never imports it

        self._bar = tqdm(total=total, desc=label, unit=unit, leave=True, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def done(self, count: int | None = None) -> None:
        """The work ended as it should, sooner than planned too (early stopping): the bar closes full (green), at
        `count` if given (the steps of a run that the engine rewound to, not those it ran ahead)."""
        count = self._bar.n if count is None else count
        started = self._bar.start_t
        self._bar.reset(total=count)  # where Jupyter's bar takes its new length (setting total would not redraw it)
        self._bar.start_t = started  # reset restarts the clock: the rate stays that of the whole run
        self._bar.update(count)
        self._bar.close()

    def close(self) -> None:
        """The work did not end as it should (an error, an interrupt): the bar closes where it stood (red)."""
        self._bar.close()


def counted(items: Iterable, bar: Bar | None) -> Iterator:
    """The items, the bar moving one unit after each (nothing when there is no bar)."""
    for item in items:
        yield item
        if bar is not None:
            bar.update()
