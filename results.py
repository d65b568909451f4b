"""Results files `build/results/taskN.json`: written atomically by the task notebooks, checked when read."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from fileio import atomic_write

SCHEMA_VERSION = 1
RESULTS_DIR = Path("build/results")
SOURCES_DIR = Path(__file__).resolve().parent
# The modules the task notebooks' results depend on (the Makefile's LIBRARY).
LIBRARY = ("utils.py", "trainer.py", "mnist.py", "experiments.py", "plots.py", "results.py", "fileio.py")


class ResultsError(RuntimeError):
    """A results file is missing, partial or from another schema: the named notebook must be rerun."""


def _plain(value):
    """json.dump's fallback: numpy scalars and arrays to Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save_results(task: str, parameters: dict, payload: dict, results_dir: str | Path = RESULTS_DIR) -> Path:
    """Write {schema, task, parameters, versions, **payload} to results_dir/task.json via a temporary file."""
    record = {
        "schema": SCHEMA_VERSION,
        "task": task,
        "parameters": parameters,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        **payload,
    }
    text = json.dumps(record, indent=1, allow_nan=False, default=_plain) + "\n"
    return atomic_write(Path(results_dir) / f"{task}.json", text.encode())


def load_results(task: str, required: tuple[str, ...] = (), results_dir: str | Path = RESULTS_DIR,
                 sources_dir: str | Path = SOURCES_DIR) -> dict:
    """The record saved by `task`.ipynb; ResultsError naming the notebook to rerun if it is unusable.

    Unusable: missing, not complete JSON, another schema, lacking a `required` key, or older than the
    notebook or a module it depends on (in `sources_dir`), as `make` would judge it.
    """
    path = Path(results_dir) / f"{task}.json"
    remedy = f"run {task}.ipynb again (`make report` does it)"
    if not path.exists():
        raise ResultsError(f"{path} is missing: {remedy}")
    written = path.stat().st_mtime
    newer = [name for name in (f"{task}.ipynb", *LIBRARY)
             if (Path(sources_dir) / name).exists() and (Path(sources_dir) / name).stat().st_mtime > written]
    if newer:
        raise ResultsError(f"{path} is outdated: {', '.join(newer)} changed after it was written: {remedy}")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not complete JSON ({exc}): {remedy}") from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_VERSION:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise ResultsError(f"{path} has schema {found!r}, this code reads schema {SCHEMA_VERSION}: {remedy}")
    missing = [key for key in ("task", "parameters", *required) if key not in record]
    if missing:
        raise ResultsError(f"{path} lacks {', '.join(missing)}: {remedy}")
    return record


# ---------------------------------------------------------------- summaries the report reads


def roughness(values) -> float:
    """Mean absolute change between consecutive values: how much a curve jumps from check to check."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(np.abs(np.diff(values)))) if len(values) > 1 else 0.0


def fit_summary(history: dict, tail_checks: int) -> dict:
    """The numbers that decide whether a run overfits: final and best accuracies and losses, and the tail trend.

    tail_slope is the least-squares slope of the validation loss over the last `tail_checks` checks, per check.
    """
    val_loss = np.asarray(history["val_loss"])
    best = int(np.argmin(val_loss))
    tail = val_loss[-tail_checks:]
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) > 1 else 0.0
    return {
        "final_train_accuracy": history["train_accuracy"][-1],
        "final_val_accuracy": history["val_accuracy"][-1],
        "accuracy_gap": history["train_accuracy"][-1] - history["val_accuracy"][-1],
        "best_val_accuracy": max(history["val_accuracy"]),
        "final_train_set_loss": history["train_set_loss"][-1],
        "final_val_loss": float(val_loss[-1]),
        "loss_gap": float(val_loss[-1]) - history["train_set_loss"][-1],
        "min_val_loss": float(val_loss[best]),
        "min_val_loss_step": history["check_steps"][best],
        "final_step": history["check_steps"][-1],
        "val_loss_tail_slope": slope,
        "tail_checks": int(len(tail)),
    }


def shuffle_comparison(plain: dict, shuffled: dict, skip_checks: int, steps_per_epoch: int) -> dict:
    """How much the validation curves of two runs jump, over the checks both made after the first `skip_checks`.

    Spikes (see `spike_steps`) are listed with their batch position within the epoch (step % steps_per_epoch).
    """
    common = min(len(plain["check_steps"]), len(shuffled["check_steps"]))
    window = slice(min(skip_checks, max(common - 2, 0)), common)
    out = {"first_step": plain["check_steps"][window.start], "last_step": plain["check_steps"][common - 1],
           "num_checks": common - window.start}
    for key in ("val_loss", "val_accuracy"):
        out[f"{key}_roughness"] = {"plain": roughness(plain[key][window]), "shuffled": roughness(shuffled[key][window])}
    for name, history in (("plain", plain), ("shuffled", shuffled)):
        start = skip_checks if len(history["check_steps"]) > skip_checks + 1 else 0
        steps = spike_steps({key: history[key][start:] for key in ("check_steps", "val_loss")})
        out[f"spikes_{name}"] = {"steps": steps, "batch_in_epoch": sorted({s % steps_per_epoch for s in steps})}
    return out


def image_roughness(w: np.ndarray) -> float:
    """Weights (785, K) -> mean squared difference of neighbouring pixels over the mean squared weight (scale-free)."""
    images = w[:784].T.reshape(-1, 28, 28).astype(np.float64)
    neighbours = np.mean(np.diff(images, axis=1) ** 2) + np.mean(np.diff(images, axis=2) ** 2)
    return float(neighbours / max(np.mean(images**2), 1e-300))


def spike_steps(history: dict, factor: float = 10.0) -> list[int]:
    """Check steps at which the validation loss jumps up by more than `factor` times the median absolute change."""
    val_loss = np.asarray(history["val_loss"], dtype=np.float64)
    change = np.diff(val_loss)
    if not len(change):
        return []
    threshold = factor * float(np.median(np.abs(change)))
    return [history["check_steps"][i + 1] for i in np.flatnonzero(change > threshold)]
