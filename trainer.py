"""Mini-batch SGD for the linear models in `utils`: validation cadence, history, early stopping, shuffling."""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import threadpoolctl

from utils import LinearModel, as_labels, batch_indices

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
    final: dict[str, float] = field(default_factory=dict)  # the last check's values

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


CHECK_BLOCK_ROWS = 7500  # rows per block of a check's GEMM (measured: 4 blocks on 2 workers beat 2 or 6)
CHECK_WORKERS = 2


def _single_threaded_blas():
    """Context manager limiting BLAS to one thread (a no-op context if threadpoolctl finds no BLAS)."""
    return threadpoolctl.ThreadpoolController().limit(limits=1, user_api="blas")


class _Checker:
    """Loss and accuracy of given weights on the whole training and validation sets.

    `submit` starts the GEMM over the stacked sets in fixed blocks of rows on a small thread pool (numpy
    releases the GIL in it) while training goes on; `collect`, at the next check, waits for it and computes
    the losses and accuracies on the main thread. The blocks are fixed and each block's GEMM is
    single-threaded, so the result does not depend on the number of workers or cores.
    """

    def __init__(self, model: LinearModel, columns: int, X_all: np.ndarray, labels_all: np.ndarray,
                 targets_all: np.ndarray, num_train: int):
        self.model, self.X_all = model, X_all
        self.labels, self.targets = labels_all, targets_all
        self.num_train, self.num_val = num_train, len(X_all) - num_train
        self.logits = np.empty((len(X_all), columns), dtype=model.dtype)
        # class-major copy of the logits: reductions over classes then run along contiguous rows
        self.logits_by_class = np.empty((model.num_outputs, len(X_all)), dtype=model.dtype)
        edges = [*range(0, len(X_all), CHECK_BLOCK_ROWS), len(X_all)]
        self.blocks = [slice(a, b) for a, b in zip(edges, edges[1:])]
        self.pool = None

    def __enter__(self):
        self.pool = ThreadPoolExecutor(max_workers=min(CHECK_WORKERS, os.cpu_count() or 1))
        return self

    def __exit__(self, *exc):
        self.pool.shutdown()
        self.pool = None

    def _gemm(self, w_padded: np.ndarray, rows: slice) -> None:
        np.matmul(self.X_all[rows], w_padded, out=self.logits[rows])

    def submit(self, w_padded: np.ndarray) -> list:
        """Start a check of the weights `w_padded` (not to be changed until `collect`); returns its handle."""
        return [self.pool.submit(self._gemm, w_padded, rows) for rows in self.blocks]

    def collect(self, futures: list) -> tuple[float, float, float, float]:
        """(validation loss, validation accuracy, training-set loss, training-set accuracy) of a submitted check."""
        for future in futures:
            future.result()
        k = self.model.num_outputs
        logits = self.logits[:, :k]
        if k > 1:
            np.copyto(self.logits_by_class.T, logits)
            logits = self.logits_by_class.T  # (N, K) again, but each class contiguous
        val, train = slice(self.num_train, None), slice(0, self.num_train)
        return (self.model.loss(logits[val], self.targets[val]),
                self.model.count_correct(logits[val], self.labels[val]) / self.num_val,
                self.model.loss(logits[train], self.targets[train]),
                self.model.count_correct(logits[train], self.labels[train]) / self.num_train)


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
    rng: np.random.Generator | None = None,
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
    if shuffle and not isinstance(rng, np.random.Generator):
        raise ValueError(f"shuffle=True needs rng, a numpy.random.Generator; received {rng!r}")
    X_train, y_train = _check_data(model, X_train, Y_train, "train")
    X_val, y_val = _check_data(model, X_val, Y_val, "val")

    num_examples = len(X_train)
    steps_per_epoch = num_examples // batch_size
    val_every = max(1, steps_per_epoch // VAL_CHECKS_PER_EPOCH)
    binary = model.num_outputs == 1
    # binary targets as (N, 1) floats in the model's dtype, softmax targets as integer labels (N,)
    targets_train = y_train.reshape(-1, 1).astype(model.dtype) if binary else y_train
    targets_val = y_val.reshape(-1, 1).astype(model.dtype) if binary else y_val

    # The training and validation sets stacked once in the compute dtype; the training batches are read
    # from the same copy.
    X_all = np.concatenate([X_train, X_val], dtype=model.dtype)  # the one copy of the data, in the compute dtype
    X_train = X_all[:num_examples]
    # The weights live in the first K columns of a zero-padded (D, 16) array while training: OpenBLAS runs
    # (n, 785) @ (785, 16) faster than (n, 785) @ (785, 10). The padding stays zero: its logits are 0,
    # so are its delta columns (the loss only touches the first K) and its gradient.
    k = model.num_outputs
    padded = k if k == 1 else -(-k // 16) * 16
    w_padded = np.zeros((model.w.shape[0], padded), dtype=model.dtype)
    w_padded[:, :k] = model.w
    caller_w, model.w = model.w, w_padded[:, :k]
    checker = _Checker(model, padded, X_all, np.concatenate([y_train, y_val]),
                       np.concatenate([targets_train, targets_val]), num_examples)

    # Buffers for one step, allocated once: a shuffled batch is gathered into X_batch with np.take.
    X_batch = np.empty((batch_size, X_all.shape[1]), dtype=model.dtype)
    t_batch = np.empty((batch_size, 1), dtype=model.dtype) if binary else np.empty(batch_size, dtype=np.intp)
    logits_batch = np.empty((batch_size, padded), dtype=model.dtype)
    grad_padded = np.zeros_like(w_padded)
    w_checked, grad_checked = np.empty_like(w_padded), np.empty_like(w_padded)  # the weights a check sees
    model.grad = grad_padded[:, :k]
    step_size = model.dtype.type(learning_rate)

    history: dict[str, list] = {key: [] for key in
                                ("train_loss", "check_steps", "val_loss", "val_accuracy", "train_accuracy",
                                 "train_set_loss")}
    stopper = EarlyStopping(early_stopping_patience)
    best_w = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_epochs * steps_per_epoch, unit="step", leave=False)
    schedule = ((epoch, idx) for epoch in range(num_epochs)
                for idx in batch_indices(num_examples, batch_size, rng if shuffle else None))

    # A check runs on the pool while the main thread goes on with the next steps; its result is collected at
    # the next check. If it says stop, training rolls back to the weights and history of the checked step,
    # so the result is what a loop that waited for every check would give.
    pending = None  # (handle, step, epoch, weights, gradient) of the check in flight
    stopped_early = False

    def collect(check) -> bool:
        """Record a check in the history; True (after rolling back to its step) when training stops there."""
        nonlocal best_w
        handle, at_step, at_epoch, w_then, grad_then = check
        val_loss, val_acc, train_set_loss, train_acc = checker.collect(handle)
        _check_diverged(val_loss, loss_limit, "validation", at_step, at_epoch, learning_rate)
        for key, value in (("check_steps", at_step), ("val_loss", val_loss), ("val_accuracy", val_acc),
                           ("train_accuracy", train_acc), ("train_set_loss", train_set_loss)):
            history[key].append(value)
        stop = stopper.update(val_loss, at_step)
        if restore_best_weights and stopper.improved:
            best_w = w_then[:, :k].copy()
        if stop:
            w_padded[...], grad_padded[...] = w_then, grad_then
            del history["train_loss"][at_step + 1:]
        return stop

    # Single-threaded BLAS: the sums in every GEMM, and so every bit of the history, do not depend on the
    # number of cores; the checks use both cores through their own thread pool instead.
    try:
        with (np.errstate(over="ignore", invalid="ignore"),  # divergence is caught below, with a clearer message
              _single_threaded_blas(), checker):
            try:
                for step, (epoch, idx) in enumerate(schedule):
                    if shuffle:
                        # mode "clip": "raise" would copy twice
                        X_b = np.take(X_train, idx, axis=0, out=X_batch, mode="clip")
                        t_b = np.take(targets_train, idx, axis=0, out=t_batch, mode="clip")
                    else:  # batches are contiguous: views, no copy
                        X_b, t_b = X_train[idx[0]:idx[-1] + 1], targets_train[idx[0]:idx[-1] + 1]
                    np.matmul(X_b, w_padded, out=logits_batch)
                    # the delta replaces the logits in logits_batch
                    loss, _ = model._loss_and_delta_inplace(logits_batch[:, :k], t_b)
                    if step == 0:
                        loss_limit = DIVERGENCE_FACTOR * max(loss, 1e-3)
                    _check_diverged(loss, loss_limit, "training", step, epoch, learning_rate)
                    history["train_loss"].append(loss)
                    model.gradient(X_b, logits_batch, out=grad_padded)
                    w_padded -= step_size * grad_padded
                    if bar is not None:
                        bar.update(1)
                    if step % val_every == 0:
                        if pending is not None and collect(pending):
                            stopped_early, pending = True, None
                            break
                        # one pair of buffers is enough: the previous check was collected just above
                        np.copyto(w_checked, w_padded)
                        np.copyto(grad_checked, grad_padded)
                        pending = (checker.submit(w_checked), step, epoch, w_checked, grad_checked)
            except TrainingDivergedError:
                # A step after a check diverged; had the loop waited for that check, it may have stopped first.
                if pending is None or not collect(pending):
                    raise
                stopped_early, pending = True, None
            if pending is not None:
                stopped_early = collect(pending)
            if stopped_early:
                step, epoch = history["check_steps"][-1], history["check_steps"][-1] // steps_per_epoch
    finally:  # the caller's array gets the weights as training left them, also after an error
        if bar is not None:
            bar.close()
        caller_w[...] = model.w
        model.w, model.grad = caller_w, model.grad.copy()
    if restore_best_weights and best_w is not None:
        model.w[...] = best_w

    final = {key: history[key][-1] for key in ("val_loss", "val_accuracy", "train_accuracy", "train_set_loss")}
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
        restored_best=bool(restore_best_weights and best_w is not None),
        final=final,
    )
