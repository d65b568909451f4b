"""Mini-batch SGD for the linear models in `utils`: validation cadence, history, early stopping, shuffling."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

import numpy as np

from support.engine import FastPath
from utils import LinearModel, as_labels

VAL_CHECKS_PER_EPOCH = 5  # the course validates every (N // batch_size) // 5 steps


class TrainingDivergedError(FloatingPointError):
    """The loss stopped being a finite number."""


class EarlyStopping:
    """Stop after `patience` consecutive validation checks without a new lowest loss; None never stops."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best_loss = math.inf
        self.best_step = -1
        self.checks_since_best = 0

    def update(self, val_loss: float, step: int) -> bool:
        """Record one check; True when training should stop after it."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_step, self.checks_since_best = val_loss, step, 0
        else:
            self.checks_since_best += 1
        return self.patience is not None and self.checks_since_best >= self.patience

    @property
    def improved(self) -> bool:
        """Whether the last update set a new best."""
        return self.checks_since_best == 0


@dataclass
class TrainResult:
    """What a run produced; `history` and the rest are plain JSON-serialisable values.

    history: train_loss (one per step: the batch's loss before its update); check_steps (the steps
    after whose update a validation check ran) and, aligned with it, val_loss, val_accuracy,
    train_accuracy and train_set_loss (on the whole training set).
    """

    history: dict[str, list]
    num_steps: int
    steps_per_epoch: int
    val_every: int
    stopped_early: bool
    stop_step: int  # the last step run
    stop_epoch: int  # its epoch, counted from 0
    best_step: int  # the check step with the lowest validation loss
    best_val_loss: float
    restored_best: bool
    # val_loss, val_accuracy, train_accuracy, train_set_loss of the weights training ends with (after the last
    # step, or at the check it stopped at; with restored_best, the best check's), and of the best check
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_hyperparameters(learning_rate, batch_size, num_epochs, num_examples, early_stopping_patience):
    if not (_is_real(learning_rate) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, received {learning_rate!r}")
    if not (_is_int(batch_size) and 1 <= batch_size <= num_examples):
        raise ValueError(
            f"batch_size must be an integer in [1, {num_examples}] (the number of training examples), "
            f"received {batch_size!r}"
        )
    if not (_is_int(num_epochs) and num_epochs >= 1):
        raise ValueError(f"num_epochs must be an integer >= 1, received {num_epochs!r}")
    if early_stopping_patience is not None and not (
        _is_int(early_stopping_patience) and early_stopping_patience >= 1
    ):
        raise ValueError(
            f"early_stopping_patience must be an integer >= 1 (validation checks) or None, "
            f"received {early_stopping_patience!r}"
        )


def _check_data(model: LinearModel, X: np.ndarray, targets: np.ndarray, name: str):
    """Return (X as given, targets as integer labels (N,)) or raise ValueError."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != model.w.shape[0]:
        raise ValueError(
            f"X_{name} must have shape (N, {model.w.shape[0]}), received {X.shape}; "
            "did you forget pre_process_images (the bias column)?"
        )
    if not np.issubdtype(X.dtype, np.floating) or not np.all(np.isfinite(X)):
        raise ValueError(f"X_{name} must be finite floating-point numbers (dtype {X.dtype}; NaN or inf present?)")
    targets = np.asarray(targets)
    if model.num_outputs == 1:
        if targets.shape not in ((len(X), 1), (len(X),)):
            raise ValueError(f"Y_{name} must have shape ({len(X)}, 1) for the binary model, received {targets.shape}")
        labels = as_labels(targets, 2)
    else:
        labels = as_labels(targets, model.num_outputs)
        if labels.shape[0] != len(X):
            raise ValueError(f"X_{name} has {len(X)} rows but Y_{name} has {labels.shape[0]} labels")
    return X, labels


DIVERGENCE_FACTOR = 1000.0  # a loss this many times the first step's (ln K at zero weights) counts as divergence


def _check_diverged(loss: float, limit: float, which: str, step: int, epoch: int, learning_rate: float) -> None:
    if not math.isfinite(loss) or loss > limit:
        if math.isfinite(loss):
            what = f"reached {loss:.4g}, over {DIVERGENCE_FACTOR:g} times the first step's"
        else:
            what = f"became {loss}"
        raise TrainingDivergedError(
            f"training diverged: the {which} loss {what} at step {step} (epoch {epoch}) with "
            f"learning_rate={learning_rate}; try a smaller learning rate"
        )


def train(
    model: LinearModel,
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_val: np.ndarray,
    Y_val: np.ndarray,
    *,
    learning_rate: float,
    batch_size: int,
    num_epochs: int,
    shuffle: bool = False,
    rng: np.random.Generator | np.random.RandomState | None = None,
    early_stopping_patience: int | None = None,
    restore_best_weights: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Train `model` in place by mini-batch SGD on (X_train (N, D), Y_train) and return the history.

    Y is binary (N, 1) for `BinaryModel`, labels (N,) or one-hot (N, K) for `SoftmaxModel`.
    Each epoch runs N // batch_size steps (the last partial batch is dropped), in a fresh order
    drawn from `rng` when `shuffle`. After the update of every step that is a multiple of
    `(N // batch_size) // 5`, step 0 included, a check records validation loss and accuracy and
    training-set accuracy and loss. With `early_stopping_patience`, training stops after that many
    consecutive checks without a new lowest validation loss.
    """
    _check_hyperparameters(learning_rate, batch_size, num_epochs, len(X_train), early_stopping_patience)
    if shuffle and not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise ValueError("shuffle=True needs rng, a numpy.random.Generator (or a RandomState for the course's order); "
                         f"received {rng!r}")
    X_train, y_train = _check_data(model, X_train, Y_train, "train")
    X_val, y_val = _check_data(model, X_val, Y_val, "val")

    num_examples = len(X_train)
    steps_per_epoch = num_examples // batch_size
    val_every = max(1, steps_per_epoch // VAL_CHECKS_PER_EPOCH)
    binary = model.num_outputs == 1
    # binary targets as (N, 1) floats in the model's dtype, softmax targets as integer labels (N,)
    targets_train = y_train.reshape(-1, 1).astype(model.dtype) if binary else y_train
    targets_val = y_val.reshape(-1, 1).astype(model.dtype) if binary else y_val
    # the data in the compute dtype (no copy when the caller's arrays already are)
    X_train = np.ascontiguousarray(X_train, dtype=model.dtype)
    X_val = np.ascontiguousarray(X_val, dtype=model.dtype)
    # Buffers, threads and the checks' machinery (fastpath.py); the algorithm is the loop below.
    fast = FastPath(model, (X_train, y_train, targets_train), (X_val, y_val, targets_val), batch_size)
    step_size = model.dtype.type(learning_rate)

    history: dict[str, list] = {key: [] for key in
                                ("train_loss", "check_steps", "val_loss", "val_accuracy", "train_accuracy",
                                 "train_set_loss")}
    stopper = EarlyStopping(early_stopping_patience)
    best_w = None
    bar = None
    if progress:
        from tqdm.auto import tqdm  # only when a bar is asked for

        bar = tqdm(total=num_epochs * steps_per_epoch, unit="step", leave=False)

    def record(checks: list) -> bool:
        """Record finished checks in order; True (after rolling back to its step) at the first that stops.

        Checks run while the next steps train and come back a few checks later; rolling back makes the result
        what a loop that waited for every check would give.
        """
        nonlocal best_w
        for check, (val_loss, val_acc, train_set_loss, train_acc) in checks:
            _check_diverged(val_loss, loss_limit, "validation", check.step, check.epoch, learning_rate)
            for key, value in (("check_steps", check.step), ("val_loss", val_loss), ("val_accuracy", val_acc),
                               ("train_accuracy", train_acc), ("train_set_loss", train_set_loss)):
                history[key].append(value)
            stop = stopper.update(val_loss, check.step)
            if restore_best_weights and stopper.improved:
                best_w = check.w.copy()
            if stop:
                fast.rollback(check)
                del history["train_loss"][check.step + 1:]
                return True
        return False

    stopped_early = False
    with np.errstate(over="ignore", invalid="ignore"), fast:  # divergence is caught below, with a clearer message
        try:
            for step, (epoch, X_batch, targets_batch) in enumerate(fast.batches(num_epochs, rng if shuffle else None)):
                # forward, and the batch's mean cross-entropy C with dC/dz (the delta, which overwrites z)
                loss, _ = model.loss_and_delta(fast.logits(X_batch), targets_batch)
                if step == 0:
                    loss_limit = DIVERGENCE_FACTOR * max(loss, 1e-3)
                if not (loss <= loss_limit):  # also nan
                    # a check in flight may have stopped training before this step: then there is no error
                    if record(fast.finish()):
                        stopped_early = True
                        break
                    _check_diverged(loss, loss_limit, "training", step, epoch, learning_rate)
                history["train_loss"].append(loss)
                fast.gradient(X_batch)  # dJ/dw = X^T delta / B + lambda w
                fast.update(step_size)  # w <- w - learning_rate * dJ/dw
                if bar is not None:
                    bar.update(1)
                # after the update of every val_every-th step: validation loss and accuracies
                if step % val_every == 0 and record(fast.check(step, epoch)):
                    stopped_early = True
                    break
            if not stopped_early:
                stopped_early = record(fast.finish())
            if stopped_early:
                step, epoch = history["check_steps"][-1], history["check_steps"][-1] // steps_per_epoch
            # the weights after the last step, which no check saw (evaluated here: single-threaded BLAS)
            after_last = None if history["check_steps"][-1] == step else _evaluate(
                model, (X_train, y_train, targets_train), (X_val, y_val, targets_val))
        finally:
            if bar is not None:
                bar.close()
    if restore_best_weights and best_w is not None:
        model.w[...] = best_w

    checks = {key: history[key] for key in ("val_loss", "val_accuracy", "train_accuracy", "train_set_loss")}
    best = history["check_steps"].index(stopper.best_step)
    restored = bool(restore_best_weights and best_w is not None)
    if restored or after_last is None:
        final = {key: values[best if restored else -1] for key, values in checks.items()}
    else:
        final = after_last
    return TrainResult(
        history=history,
        num_steps=step + 1,
        steps_per_epoch=steps_per_epoch,
        val_every=val_every,
        stopped_early=stopped_early,
        stop_step=step,
        stop_epoch=epoch,
        best_step=stopper.best_step,
        best_val_loss=stopper.best_loss,
        restored_best=restored,
        final=final,
        best={key: values[best] for key, values in checks.items()},
    )


def _evaluate(model: LinearModel, train: tuple, val: tuple) -> dict[str, float]:
    """Loss and accuracy of the model's weights on the whole training and validation sets (X, labels, targets)."""
    out = {}
    for name, (X, labels, targets) in (("val", val), ("train", train)):
        logits = model.logits(X)
        loss, accuracy = model.loss(logits, targets), model.count_correct(logits, labels) / len(X)
        out.update({f"{name}_loss" if name == "val" else "train_set_loss": loss, f"{name}_accuracy": accuracy})
    return out
