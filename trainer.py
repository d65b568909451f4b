"""Mini-batch SGD as the course's BaseTrainer runs it, through the functions of utils.py: forward, the loss,
backward, the update; a validation check every (N // batch_size) // 5 steps; the course's early stopping.

`BaseTrainer.train` is the loop. How its batches come and its checks run is an engine's business, handed in:
`PlainEngine` (below, the default) takes utils.batch_loader's batches and runs each check at once, as the course does.
The experiments hand in support/engine.py's `FastEngine`, which runs the same validation_step on a snapshot of the
weights on other threads while training goes on, and rewinds training when a late result says stop: the same
functions on the same numbers, so the same history, bit for bit (tests/test_trainer.py). `train` is the experiments'
entry: it runs a trainer and returns a `TrainResult`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

import utils

VAL_CHECKS_PER_EPOCH = 5  # the course validates every (N // batch_size) // 5 steps
DIVERGENCE_FACTOR = 1000.0  # a loss this many times the first step's (ln K at zero weights) counts as divergence
SATURATED_CHECKS = 5  # checks in a row whose validation loss sits at the clip's ceiling: divergence too


class TrainingDivergedError(FloatingPointError):
    """The loss stopped being a finite number."""


def should_early_stop(validation_loss: dict, num_steps: int = 10) -> bool:
    """The course's rule: of the last num_steps + 1 validation losses (all of them, once there are num_steps),
    stop when the first is the lowest; {global step: loss} in the order checked."""
    # BEGIN SOLUTION Task 2d: True when the validation loss has not reached a new low in the last num_steps checks
    relevant = list(validation_loss.values())[-(num_steps + 1):]
    return len(relevant) >= num_steps and min(relevant) == relevant[0]
    # END SOLUTION


class Validation(tuple):
    """(val_loss, accuracy_train, accuracy_val), as the course's validation_step returns them; `train_loss`, the loss
    over the whole training set, comes beside them (from the forward pass that accuracy_train needs)."""

    def __new__(cls, val_loss: float, accuracy_train: float, accuracy_val: float, train_loss: float | None = None):
        self = super().__new__(cls, (val_loss, accuracy_train, accuracy_val))
        self.train_loss = train_loss
        return self


class PlainEngine:
    """The course's way: the batches of utils.batch_loader, each check `validation_step()` at once. An engine is a
    context (threads may live inside) with batches(epoch), check(step), results(wait) and rewind(step)."""

    def __init__(self, trainer: BaseTrainer):
        self.trainer, self.ready = trainer, []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        """Nothing runs beside the loop here."""

    def batches(self, epoch: int):
        """The epoch's (X_batch, Y_batch), as utils.batch_loader yields them."""
        t = self.trainer
        return utils.batch_loader(t.X_train, t.Y_train, t.batch_size, shuffle=t.shuffle_dataset, rng=t.rng)

    def check(self, step: int) -> None:
        """Start the check of the weights after `step`."""
        self.ready.append((step, self.trainer.validation_step()))

    def results(self, wait: bool) -> list:
        """[(step, Validation)] of the checks finished since the last call, in order; with `wait`, every one."""
        ready, self.ready = self.ready, []
        return ready

    def rewind(self, step: int) -> None:
        """The model back to the weights after `step`: nothing ran ahead of a check here."""


class BaseTrainer:
    """The course's trainer: `train_step` and `validation_step` for the model of utils.py (a subclass may bring its
    own, as the course's task2.py and task3.py do), and `train`, the loop.

    Ours beyond the course's (keywords): `early_stopping` (the course's should_early_stop over that many checks; None
    trains every epoch), `rng` (shuffles the batches; default numpy's global generator, as the course), `engine` (a
    class taking the trainer: PlainEngine, or one handed in), `progress` (anything with update(), moved a step after
    each batch).
    """

    def __init__(self, model, learning_rate: float, batch_size: int, shuffle_dataset: bool, X_train: np.ndarray,
                 Y_train: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray, *, early_stopping: int | None = 10,
                 rng: np.random.Generator | np.random.RandomState | None = None, engine: Callable | None = None,
                 progress=None):
        _check_hyperparameters(learning_rate, batch_size, len(X_train), early_stopping)
        self.model, self.learning_rate, self.batch_size = model, learning_rate, batch_size
        self.shuffle_dataset, self.early_stopping, self.rng = shuffle_dataset, early_stopping, rng
        self.X_train, self.Y_train, self.X_val, self.Y_val = X_train, Y_train, X_val, Y_val
        self.engine, self.progress = engine or PlainEngine, progress
        self.stopped_early, self.stop_step = False, -1

    def train_step(self, X_batch: np.ndarray, Y_batch: np.ndarray) -> float:
        """Forward, backward and a gradient descent step on one batch; the batch's loss, before the update."""
        # BEGIN SOLUTION Task 2b: the model's outputs for the batch, its gradient (backward), a step of gradient
        # descent on self.model.w with self.learning_rate; return the batch's loss (utils.cross_entropy_loss)
        outputs = self.model.forward(X_batch)
        self.model.backward(X_batch, outputs, Y_batch)
        self.model.w -= self.learning_rate * self.model.grad
        self.model.zero_grad()
        return utils.cross_entropy_loss(Y_batch, outputs)
        # END SOLUTION

    def validation_step(self) -> Validation:
        """(loss on the validation set, accuracy on the training set, accuracy on the validation set), and the loss
        on the training set beside them."""
        outputs_train, outputs_val = self.model.forward(self.X_train), self.model.forward(self.X_val)
        return Validation(utils.cross_entropy_loss(self.Y_val, outputs_val),
                          utils.accuracy(self.Y_train, outputs_train), utils.accuracy(self.Y_val, outputs_val),
                          utils.cross_entropy_loss(self.Y_train, outputs_train))

    def train(self, num_epochs: int) -> tuple[dict, dict]:
        """Mini-batch SGD for `num_epochs` epochs, or until early stopping; (train_history, val_history), the course's:
        train_history["loss"][step] is a batch's loss, and at every check (after the update of every
        (N // batch_size) // 5-th step, step 0 included) train_history["accuracy"][step], val_history["loss"][step]
        and val_history["accuracy"][step]; train_history["set_loss"][step], the training set's loss, is ours."""
        _check_epochs(num_epochs)
        num_batches_per_epoch = self.X_train.shape[0] // self.batch_size
        num_steps_per_val = max(1, num_batches_per_epoch // VAL_CHECKS_PER_EPOCH)
        last_step = num_epochs * num_batches_per_epoch - 1
        train_history = dict(loss={}, accuracy={}, set_loss={})
        val_history = dict(loss={}, accuracy={})
        self.stopped_early, divergence = False, Divergence(self, num_batches_per_epoch)
        with self.engine(self) as engine:  # how the checks run: at once, or grouped and a few checks late
            global_step = 0
            for epoch in range(num_epochs):
                for X_batch, Y_batch in engine.batches(epoch):
                    loss = self.train_step(X_batch, Y_batch)
                    train_history["loss"][global_step] = loss
                    if self.progress is not None:
                        self.progress.update()
                    if global_step % num_steps_per_val == 0:
                        engine.check(global_step)
                    diverged = divergence.in_training(loss)  # an error, unless a check in flight stopped before it
                    for step, checked in engine.results(wait=diverged or global_step == last_step):
                        val_loss, accuracy_train, accuracy_val = checked
                        divergence.check_validation(val_loss, step)
                        train_history["accuracy"][step] = accuracy_train
                        train_history["set_loss"][step] = getattr(checked, "train_loss", None)
                        val_history["loss"][step], val_history["accuracy"][step] = val_loss, accuracy_val
                        if self.early_stopping and should_early_stop(val_history["loss"], self.early_stopping):
                            engine.rewind(step)  # training ran ahead of this check: back to the weights after it
                            for later in range(step + 1, global_step + 1):
                                del train_history["loss"][later]
                            self.stopped_early, self.stop_step = True, step
                            return train_history, val_history
                    if diverged:
                        divergence.fail(loss, "training", global_step)
                    global_step += 1
        self.stop_step = global_step - 1
        return train_history, val_history


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_hyperparameters(learning_rate, batch_size, num_examples, early_stopping) -> None:
    if not (_is_real(learning_rate) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, received {learning_rate!r}")
    if not (_is_int(batch_size) and 1 <= batch_size <= num_examples):
        raise ValueError(f"batch_size must be an integer in [1, {num_examples}] (the number of training examples), "
                         f"received {batch_size!r}")
    if early_stopping is not None and not (_is_int(early_stopping) and early_stopping >= 1):
        raise ValueError(f"early_stopping_patience must be an integer >= 1 (validation checks) or None, "
                         f"received {early_stopping!r}")


def _check_epochs(num_epochs) -> None:
    if not (_is_int(num_epochs) and num_epochs >= 1):
        raise ValueError(f"num_epochs must be an integer >= 1, received {num_epochs!r}")


class Divergence:
    """When training has diverged: a loss that is not finite or exceeds DIVERGENCE_FACTOR times the first step's;
    or a validation loss at half the most a clipped cross-entropy can give (utils.cross_entropy_loss: nearly every
    example given no probability for its class) for SATURATED_CHECKS checks in a row, where the clip keeps it from
    growing further."""

    def __init__(self, trainer: BaseTrainer, steps_per_epoch: int):
        self.trainer, self.steps_per_epoch, self.limit, self.saturated = trainer, steps_per_epoch, None, 0
        dtype = getattr(getattr(trainer.model, "w", None), "dtype", np.dtype(np.float64))
        self.ceiling = -math.log(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).tiny)

    def in_training(self, loss: float) -> bool:
        """Whether the batch loss says training diverged (the first sets the limit)."""
        self.limit = self.limit or DIVERGENCE_FACTOR * max(loss, 1e-3)
        return not loss <= self.limit  # nan too

    def check_validation(self, val_loss: float, step: int) -> None:
        """TrainingDivergedError if the validation loss says training diverged."""
        self.saturated = self.saturated + 1 if val_loss >= 0.5 * self.ceiling else 0
        if not val_loss <= self.limit or self.saturated >= SATURATED_CHECKS:
            self.fail(val_loss, "validation", step)

    def fail(self, loss: float, which: str, step: int) -> None:
        if not math.isfinite(loss):
            what = f"became {loss}"
        elif loss > self.limit:
            what = f"reached {loss:.4g}, over {DIVERGENCE_FACTOR:g} times the first step's"
        else:
            what = f"stayed at {loss:.4g}, saturated, for {SATURATED_CHECKS} checks"
        raise TrainingDivergedError(
            f"training diverged: the {which} loss {what} at step {step} (epoch {step // self.steps_per_epoch}) with "
            f"learning_rate={self.trainer.learning_rate}; try a smaller learning rate")


@dataclass
class TrainResult:
    """What a run produced, in plain JSON-serialisable values (the results files hold it).

    history: train_loss (one per step: the batch's loss before its update); check_steps (the steps after whose
    update a validation check ran) and, aligned with it, val_loss, val_accuracy, train_accuracy and train_set_loss
    (on the whole training set).
    """

    history: dict[str, list]
    num_steps: int
    steps_per_epoch: int
    val_every: int
    stopped_early: bool
    stop_step: int  # the last step run
    stop_epoch: int  # its epoch, counted from 0
    best_step: int  # the check step with the lowest validation loss (the first, in a tie)
    best_val_loss: float
    # val_loss, val_accuracy, train_accuracy, train_set_loss of the weights training ends with (after the last step,
    # or at the check it stopped at), and of the best check
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def train(model: utils.LinearModel, X_train: np.ndarray, Y_train: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
          *, learning_rate: float, batch_size: int, num_epochs: int, shuffle: bool = False,
          rng: np.random.Generator | np.random.RandomState | None = None, early_stopping_patience: int | None = None,
          engine: Callable | None = None, progress: Callable | None = None) -> TrainResult:
    """Train `model` in place on (X_train (N, D), Y_train) with a BaseTrainer and return what the run produced.

    Y is binary (N, 1) for `BinaryModel`, labels (N,) or one-hot (N, K) for `SoftmaxModel`. Shuffling (every epoch
    a fresh order) needs `rng`: a numpy Generator, or a RandomState for the course's order. `engine` as BaseTrainer
    takes it. `progress(total_steps)` gives a progress bar (update(), done(count), close()), or None for none: done
    when the run ends, early stopping included, close (short of its end) on an error or an interrupt.
    """
    if shuffle and not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise ValueError("shuffle=True needs rng, a numpy.random.Generator (or a RandomState for the course's order); "
                         f"received {rng!r}")
    _check_epochs(num_epochs)
    X_train, targets_train = _checked_data(model, X_train, Y_train, "train")
    X_val, targets_val = _checked_data(model, X_val, Y_val, "val")
    bar = progress(num_epochs * (len(X_train) // batch_size)) if progress else None
    trainer = BaseTrainer(model, learning_rate, batch_size, shuffle, X_train, targets_train, X_val, targets_val,
                          early_stopping=early_stopping_patience, rng=rng, engine=engine, progress=bar)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is caught with a clearer message
            train_history, val_history = trainer.train(num_epochs)
    except BaseException:
        if trainer.progress is not None:
            trainer.progress.close()  # short of its end: an error or an interrupt
        raise
    if trainer.progress is not None:
        trainer.progress.done(trainer.stop_step + 1)
    history = {"train_loss": list(train_history["loss"].values()), "check_steps": list(val_history["loss"]),
               "val_loss": list(val_history["loss"].values()), "val_accuracy": list(val_history["accuracy"].values()),
               "train_accuracy": list(train_history["accuracy"].values()),
               "train_set_loss": list(train_history["set_loss"].values())}
    names = ("val_loss", "train_accuracy", "val_accuracy", "train_set_loss")
    at = {step: dict(zip(names, values)) for step, values in
          zip(history["check_steps"], zip(*(history[name] for name in names)))}
    steps_per_epoch = len(X_train) // batch_size
    stop = trainer.stop_step
    if stop == history["check_steps"][-1]:
        final = at[stop]
    else:  # the weights after the last step, which no check saw
        checked = trainer.validation_step()
        final = dict(zip(names, (checked[0], checked[1], checked[2], checked.train_loss)))
    best_step = history["check_steps"][int(np.argmin(history["val_loss"]))]
    return TrainResult(history=history, num_steps=stop + 1, steps_per_epoch=steps_per_epoch,
                       val_every=max(1, steps_per_epoch // VAL_CHECKS_PER_EPOCH), stopped_early=trainer.stopped_early,
                       stop_step=stop, stop_epoch=stop // steps_per_epoch, best_step=best_step,
                       best_val_loss=at[best_step]["val_loss"], final=final, best=at[best_step])


def _checked_data(model: utils.LinearModel, X: np.ndarray, Y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(X in the model's dtype, targets in it too: binary (N, 1), or one-hot (N, K), the course's, which the loss and
    backward take fastest); ValueError naming what was received."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != model.w.shape[0]:
        raise ValueError(f"X_{name} must have shape (N, {model.w.shape[0]}), received {X.shape}; "
                         "did you forget pre_process_images (the bias column)?")
    if not np.issubdtype(X.dtype, np.floating) or not np.all(np.isfinite(X)):
        raise ValueError(f"X_{name} must be finite floating-point numbers (dtype {X.dtype}; NaN or inf present?)")
    Y = np.asarray(Y)
    if model.num_outputs == 1:
        if Y.shape not in ((len(X), 1), (len(X),)):
            raise ValueError(f"Y_{name} must have shape ({len(X)}, 1) for the binary model, received {Y.shape}")
        targets = utils.check_labels(Y, 2).reshape(-1, 1).astype(model.dtype)
    else:
        labels = utils.as_labels(Y, model.num_outputs)
        if labels.shape[0] != len(X):
            raise ValueError(f"X_{name} has {len(X)} rows but Y_{name} has {labels.shape[0]} labels")
        targets = utils.one_hot_encode(labels, model.num_outputs, dtype=model.dtype)
    return np.ascontiguousarray(X, dtype=model.dtype), targets
