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


CHECK_BLOCK_ROWS = 7500  # most rows per block of a check's GEMM; each set is cut into equal blocks
CHECK_WORKERS = 2
CHECKS_PER_GEMM = 6  # checks whose weights share one GEMM: 6 softmax checks fill 60 of 64 columns
GATHER_BATCHES = 32  # shuffled batches gathered in one piece, ahead of the steps that use them


def _single_threaded_blas():
    """Context manager limiting BLAS to one thread (a no-op context if threadpoolctl finds no BLAS)."""
    return threadpoolctl.ThreadpoolController().limit(limits=1, user_api="blas")


@dataclass
class _Check:
    """A validation check: the step and epoch after whose update it ran, and views of the weights and gradient then."""

    step: int
    epoch: int
    w: np.ndarray  # (D, K)
    grad: np.ndarray  # (D, padded K)


@dataclass
class _Set:
    """One of the sets a check evaluates: X (N, D), labels (N,), targets as the loss takes them, logits (N, columns)."""

    X: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    by_class: np.ndarray  # (checks per GEMM, K, N): each check's logits class-major, for fast reductions over classes


class _Checker:
    """Loss and accuracy of weight snapshots on the whole training and validation sets, a group at a time.

    One check alone is a GEMM with 10 columns over all the data, which OpenBLAS runs at about a sixth of its
    large-GEMM rate; so `CHECKS_PER_GEMM` snapshots share the columns of one weight matrix, and one GEMM per set
    gives the logits of all of them: the data is read once for six checks, at about two thirds of that rate
    (measured on the project's machine). The GEMMs run in fixed blocks of rows on a thread pool (numpy releases
    the GIL in them), and then each check's losses and accuracies, while training goes on. `add` returns the
    results of the group before when a new group is full, `finish` the rest. The blocks are fixed and each
    block's GEMM is single-threaded, so the results do not depend on the number of workers or cores.
    """

    def __init__(self, pool: ThreadPoolExecutor, model: LinearModel, padded: int,
                 train: tuple[np.ndarray, np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray, np.ndarray]):
        """`train` and `val` are (X (N, D), labels (N,), targets) of each set."""
        self.pool, self.model = pool, model
        k, group = model.num_outputs, CHECKS_PER_GEMM
        columns = -(-group * k // 16) * 16
        dims = train[0].shape[1]
        self.sets = [_Set(X, labels, targets, np.empty((len(X), columns), model.dtype),
                          np.empty((group, k, len(X)), model.dtype)) for X, labels, targets in (train, val)]
        self.blocks = []  # (set, rows)
        for s in self.sets:
            edges = np.linspace(0, len(s.X), -(-len(s.X) // CHECK_BLOCK_ROWS) + 1).astype(int)
            self.blocks += [(s, slice(a, b)) for a, b in zip(edges, edges[1:])]
        # two of each: one group fills while the other is computed
        self.weights = [np.zeros((dims, columns), dtype=model.dtype) for _ in range(2)]
        self.grads = [np.empty((group, dims, padded), dtype=model.dtype) for _ in range(2)]
        self.filling: list[_Check] = []  # the checks of the group being filled, in buffers `self.side`
        self.side = 0
        self.in_flight: tuple[list, list[_Check]] | None = None  # (futures, checks) of the group being computed

    def add(self, step: int, epoch: int, w_padded: np.ndarray, grad_padded: np.ndarray) -> list:
        """Snapshot the weights for the check of `step`; once that fills a group, the results of the one before."""
        k, slot = self.model.num_outputs, len(self.filling)
        weights, grads = self.weights[self.side], self.grads[self.side]
        weights[:, slot * k:(slot + 1) * k] = w_padded[:, :k]
        grads[slot] = grad_padded
        self.filling.append(_Check(step, epoch, weights[:, slot * k:(slot + 1) * k], grads[slot]))
        if len(self.filling) < CHECKS_PER_GEMM:
            return []
        done = self._collect()
        self._submit()
        return done

    def finish(self) -> list:
        """[(check, results)] of every check not yet returned, in order."""
        done = self._collect()
        if self.filling:
            self._submit()
            done += self._collect()
        return done

    @staticmethod
    def _gemm(s: _Set, rows: slice, weights: np.ndarray) -> None:
        np.matmul(s.X[rows], weights, out=s.logits[rows])

    def _submit(self) -> None:
        weights = self.weights[self.side]
        gemms = [self.pool.submit(self._gemm, s, rows, weights) for s, rows in self.blocks]
        # queued after the GEMM blocks, so on any number of workers a results task only waits for started ones
        results = [self.pool.submit(self._results, gemms, slot) for slot in range(len(self.filling))]
        self.in_flight = results, self.filling
        self.filling, self.side = [], 1 - self.side

    def _collect(self) -> list:
        if self.in_flight is None:
            return []
        futures, checks = self.in_flight
        self.in_flight = None
        return [(check, future.result()) for check, future in zip(checks, futures)]

    def _results(self, gemms: list, slot: int) -> tuple[float, float, float, float]:
        """(validation loss, validation accuracy, training-set loss, training-set accuracy) of a group's check."""
        for gemm in gemms:
            gemm.result()
        k, out = self.model.num_outputs, []
        for s in reversed(self.sets):  # validation first
            logits = s.logits[:, slot * k:(slot + 1) * k]
            if k > 1:
                np.copyto(s.by_class[slot].T, logits)
                logits = s.by_class[slot].T  # (N, K) again, but each class contiguous
            out += [self.model.loss(logits, s.targets), self.model.count_correct(logits, s.labels) / len(s.X)]
        return tuple(out)


def _batches(gatherer: ThreadPoolExecutor, X: np.ndarray, targets: np.ndarray, batch_size: int, num_epochs: int,
             rng: np.random.Generator | None):
    """Yield (epoch, X_batch (batch_size, D), targets_batch) for every step, as views.

    Without `rng`, consecutive slices of the training set. With it, each epoch in a fresh order (the permutation
    of `batch_indices`), gathered by `gatherer` `GATHER_BATCHES` batches at a time while the batches before train.
    """
    steps = len(X) // batch_size
    if rng is None:
        for epoch in range(num_epochs):
            for i in range(0, steps * batch_size, batch_size):
                yield epoch, X[i:i + batch_size], targets[i:i + batch_size]
        return
    piece = min(steps, GATHER_BATCHES) * batch_size
    buffers = [(np.empty((piece, X.shape[1]), X.dtype), np.empty((piece, *targets.shape[1:]), targets.dtype))
               for _ in range(2)]

    def pieces():
        """(epoch, the piece's row indices) in training order; an epoch's order is drawn at its first piece."""
        for epoch in range(num_epochs):
            order = np.concatenate(batch_indices(len(X), batch_size, rng))
            for start in range(0, len(order), piece):
                yield epoch, order[start:start + piece]

    def gather(side: int, rows: np.ndarray) -> None:
        X_piece, t_piece = buffers[side]
        np.take(X, rows, axis=0, out=X_piece[:len(rows)], mode="clip")  # mode "clip": "raise" would copy twice
        np.take(targets, rows, axis=0, out=t_piece[:len(rows)], mode="clip")

    todo = pieces()
    epoch, rows = next(todo)
    side = 0
    gathering = gatherer.submit(gather, side, rows)
    while True:
        upcoming = next(todo, None)
        gathering.result()
        if upcoming is not None:
            gathering = gatherer.submit(gather, 1 - side, upcoming[1])
        X_piece, t_piece = buffers[side]
        for i in range(0, len(rows), batch_size):
            yield epoch, X_piece[i:i + batch_size], t_piece[i:i + batch_size]
        if upcoming is None:
            return
        (epoch, rows), side = upcoming, 1 - side


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

    # The data in the compute dtype (no copy when the caller's arrays already are).
    X_train = np.ascontiguousarray(X_train, dtype=model.dtype)
    X_val = np.ascontiguousarray(X_val, dtype=model.dtype)
    # The weights live in the first K columns of a zero-padded (D, 16) array while training: OpenBLAS runs
    # (n, 785) @ (785, 16) faster than (n, 785) @ (785, 10). The padding stays zero: its logits are 0,
    # so are its delta columns (the loss only touches the first K) and its gradient.
    k = model.num_outputs
    padded = k if k == 1 else -(-k // 16) * 16
    w_padded = np.zeros((model.w.shape[0], padded), dtype=model.dtype)
    w_padded[:, :k] = model.w
    caller_w, model.w = model.w, w_padded[:, :k]
    # The checks run on a pool and shuffled batches are gathered on a thread of their own, while the main
    # thread trains.
    pool = ThreadPoolExecutor(max_workers=min(CHECK_WORKERS, os.cpu_count() or 1))
    gatherer = ThreadPoolExecutor(max_workers=1)
    checker = _Checker(pool, model, padded, (X_train, y_train, targets_train), (X_val, y_val, targets_val))
    schedule = _batches(gatherer, X_train, targets_train, batch_size, num_epochs, rng if shuffle else None)

    logits_batch = np.empty((batch_size, padded), dtype=model.dtype)
    grad_padded = np.zeros_like(w_padded)
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
    # Checks run on the pool while the main thread goes on with the next steps; their results come back a few
    # checks later (see _Checker). If one says stop, training rolls back to the weights and history of its step,
    # so the result is what a loop that waited for every check would give.
    stopped_early = False

    def record(checks: list) -> bool:
        """Record finished checks in order; True (after rolling back to its step) at the first that stops."""
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
                w_padded[:, :k], grad_padded[...] = check.w, check.grad
                del history["train_loss"][check.step + 1:]
                return True
        return False

    # Single-threaded BLAS: the sums in every GEMM, and so every bit of the history, do not depend on the
    # number of cores; the checks use both cores through their own thread pool instead.
    try:
        with (np.errstate(over="ignore", invalid="ignore"),  # divergence is caught below, with a clearer message
              _single_threaded_blas(), pool, gatherer):
            for step, (epoch, X_b, t_b) in enumerate(schedule):
                np.matmul(X_b, w_padded, out=logits_batch)
                # the delta replaces the logits in logits_batch
                loss, _ = model._loss_and_delta_inplace(logits_batch[:, :k], t_b)
                if step == 0:
                    loss_limit = DIVERGENCE_FACTOR * max(loss, 1e-3)
                if not (loss <= loss_limit):  # also nan
                    # a check in flight may have stopped training before this step: then there is no error
                    if record(checker.finish()):
                        stopped_early = True
                        break
                    _check_diverged(loss, loss_limit, "training", step, epoch, learning_rate)
                history["train_loss"].append(loss)
                model.gradient(X_b, logits_batch, out=grad_padded)
                w_padded -= step_size * grad_padded
                if bar is not None:
                    bar.update(1)
                if step % val_every == 0 and record(checker.add(step, epoch, w_padded, grad_padded)):
                    stopped_early = True
                    break
            if not stopped_early:
                stopped_early = record(checker.finish())
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
