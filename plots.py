"""Plot helpers: each takes data and an Axes (or a Figure) and draws; `save_figure` writes the PNG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image

from support.fileio import atomic_write

PNG_DPI = 200
NO_TICKS = {"xticks": [], "yticks": []}  # image tiles: no ticks to lay out (much of a figure's drawing time)


def rolling_mean_std(values, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std) of `values` over trailing windows of `window` steps (the first full window onwards)."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(window, len(values)))
    windows = np.lib.stride_tricks.sliding_window_view(values, window)
    return np.arange(window - 1, len(values)), windows.mean(axis=1), windows.std(axis=1)


def plot_loss(ax, history: dict, label: str = "", window: int = 1, color=None) -> np.ndarray:
    """Training loss (mean and +-1 std over `window` steps) and validation loss against the step; the mean drawn."""
    steps, mean, std = rolling_mean_std(history["train_loss"], window)
    (line,) = ax.plot(steps, mean, color=color, lw=1.2, label=f"training loss{label} (mean of {window} steps)")
    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.25, lw=0,
                    label=f"training loss{label}: $\\pm$1 std")
    ax.plot(history["check_steps"], history["val_loss"], color=line.get_color(), ls="--", lw=1.5,
            label=f"validation loss{label}")
    ax.set_xlabel("training step (mini-batches)")
    ax.set_ylabel("cross-entropy loss")
    return mean


def plot_accuracy(ax, history: dict, label: str = "", keys=("train_accuracy", "val_accuracy"), **style) -> None:
    """Training-set and/or validation accuracy at each validation check, against the step."""
    names = {"train_accuracy": "training", "val_accuracy": "validation"}
    for key in keys:
        ax.plot(history["check_steps"], history[key], label=f"{names[key]} accuracy{label}",
                ls="-" if key == "val_accuracy" else ":", **style)
    ax.set_xlabel("training step (mini-batches)")
    ax.set_ylabel("accuracy")


def fit_ylim(ax, course: tuple[float, float], *series, limits: tuple = (None, None), share: float = 0.95,
             panel: str = "") -> dict:
    """Set the y-range and say which it is: {"range", "source", "outside", "points", "note"}.

    The course's range when it shows at least `share` of the plotted values (the figures then look like the
    course's); otherwise one fitted to them: the 1st to 99th percentile with a tenth of that span either side
    (robust to the first checks' spike), within `limits` (0 for a loss, 1 for an accuracy). `note` is for the
    caption: what the axis shows, why, and how many values it leaves out ('' when it is the course's, whole).
    """
    values = np.concatenate([np.asarray(s, dtype=float).ravel() for s in series]) if series else np.zeros(1)
    values = values[np.isfinite(values)]
    low, high = course
    course_outside = int(np.sum((values < low) | (values > high)))
    source = "course" if values.size and course_outside <= (1 - share) * values.size else "data"
    if source == "data":
        lo, hi = np.percentile(values, [1, 99])
        span = hi - lo or max(abs(hi), 1e-3) * 0.1
        low, high = lo - span / 10, hi + span / 10
        low = low if limits[0] is None else max(low, limits[0])
        high = high if limits[1] is None else min(high, limits[1])
    ax.set_ylim(low, high)
    outside = int(np.sum((values < low) | (values > high)))
    prefix = f"{panel}: " if panel else ""
    if source == "course":
        note = (f"{prefix}the y-axis shows the course's range [{low:g}, {high:g}]; {outside} of {values.size} plotted "
                "values lie outside it." if outside else "")
    else:
        note = (f"{prefix}the y-axis shows [{low:.3g}, {high:.3g}], fitted to the data: the course's range "
                f"[{course[0]:g}, {course[1]:g}] would leave out {course_outside} of {values.size} plotted values"
                + (f"; {outside} lie outside the fitted range (the first checks)." if outside else "."))
    note = note[:1].upper() + note[1:]
    return {"range": [float(low), float(high)], "source": source, "outside": outside, "points": int(values.size),
            "note": note}


def plot_weight_images(fig, weights: dict[str, np.ndarray], columns: int = 5, class_names=None) -> None:
    """28x28 images of the K columns of each w (785, K) in `weights` ({label: w}), bias row excluded.

    Each entry gets a block of rows of `columns` images, its own colour scale (symmetric about zero and
    shared by its K images) and a colour bar.
    """
    blocks = fig.subfigures(len(weights), 1, squeeze=False)[:, 0]
    for block, (label, w) in zip(blocks, weights.items()):
        num_classes = w.shape[1]
        images = w[:784].T.reshape(num_classes, 28, 28)
        limit = float(np.abs(images).max()) or 1.0
        axes = block.subplots(-(-num_classes // columns), columns, squeeze=False, subplot_kw=NO_TICKS).ravel()
        for k, ax in enumerate(axes):
            ax.set_axis_off()
            if k < num_classes:
                im = ax.imshow(images[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
                ax.set_title(class_names[k] if class_names else str(k), fontsize=9)
        if label:
            block.suptitle(label, fontsize=10)
        block.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02)


def plot_confusion(ax, counts: np.ndarray, class_names) -> None:
    """A confusion matrix (rows: true class, columns: predicted): each cell its count and its percentage of the
    true class, which is also its colour; sized to be read on paper (8 pt at the report's width)."""
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        if count:
            ax.text(j, i, f"{count}\n{100 * fractions[i, j]:.1f}%", ha="center", va="center", fontsize=8,
                    linespacing=1.1, color="white" if fractions[i, j] > 0.6 else "black")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=90 if max(map(len, class_names)) > 2 else 0, fontsize=9)
    ax.set_yticks(ticks, class_names, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")


def plot_gallery(fig, images: np.ndarray, titles: list[str], columns: int = 6) -> None:
    """Images (n, 784) as 28x28 greyscale tiles with a title each."""
    if not len(images):
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        return
    rows = -(-len(images) // columns)
    axes = fig.subplots(rows, columns, squeeze=False, subplot_kw=NO_TICKS).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, title in zip(axes, images, titles):
        ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(title, fontsize=7)


def save_figure(fig, name: str, out_dir: str | Path = "build/figures") -> None:
    """Write `name`.png (200 dpi) into out_dir via a temporary file and a rename, show it, and close the figure.

    One rendering: in a notebook the saved PNG is what shows (matplotlib's inline backend would render the
    figure again at the end of the cell).
    """
    rgba = io.BytesIO()
    fig.savefig(rgba, format="png", dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
    # RGB: the figure is opaque, and an alpha channel makes xdvipdfmx decode and recompress the image (0.05 s
    # each, every PDF build) where it copies RGB data as they are (latex_route.png_as_pdf)
    buffer = io.BytesIO()
    PIL.Image.open(rgba).convert("RGB").save(buffer, format="png", dpi=(PNG_DPI, PNG_DPI))
    atomic_write(Path(out_dir) / f"{name}.png", buffer.getvalue())
    plt.close(fig)
    try:
        from IPython import get_ipython  # optional: shown only where IPython runs (a notebook)
        from IPython.display import Image, display  # optional, as above
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(buffer.getvalue(), width=int(fig.get_figwidth() * 96)))


def new_figure(width: float = 7.0, height: float = 3.6):
    """A figure sized for the report's text width, with constrained layout."""
    return plt.figure(figsize=(width, height), layout="constrained")
