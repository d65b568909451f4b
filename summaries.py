"""What the task notebooks measure about their runs, stored in their results files for the report: the numbers
that decide whether a run overfits, how much two runs' validation curves jump, and how rough a weight image is.
tests/test_answers.py checks them on small histories."""

from __future__ import annotations

import numpy as np


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
