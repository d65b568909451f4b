"""The engine that makes `trainer.BaseTrainer.train` fast without changing what it computes: `FastEngine`.

The loop asks an engine for each epoch's batches, starts a validation check after every (N // batch_size) // 5-th
step, takes the results as they come, and rewinds when one says stop. The plain engine (trainer.py) runs each check
at once. This one (measured on the project's 2-core machine; `make bench` prints the figures):
- runs BLAS single-threaded, so no sum, and no bit of the history, depends on the number of cores;
- evaluates `CHECKS_PER_GEMM` checks with one GEMM per set (their weights side by side): one check alone is a GEMM
  with 10 columns over all 30,000 images, which OpenBLAS runs at about a fifth of its large-GEMM rate; twelve read
  the data once, at about 85% of it. The GEMMs run in fixed blocks of rows on a thread pool while training goes
  on, so results come back a few checks late; each check's loss and accuracies then come from the model's own
  activation, utils.cross_entropy_loss and utils.accuracy, as validation_step computes them;
- gathers a shuffled epoch's batches ahead, a piece at a time on a thread of their own, in the order
  utils.batch_indices draws (drawn when the epoch starts, as batch_loader draws it), so a step reads a contiguous
  block.
`rewind` returns the model to the weights after a check's step, so that a stop found late leaves what a loop that
waited for every check leaves; tests/test_trainer.py shows the two engines give the same steps, stop and history.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import threadpoolctl

import utils
from support.progress import counted

CHECK_BLOCK_ROWS = 7500  # most rows per block of a check's GEMM; each set is cut into equal blocks
CHECK_WORKERS = 2
CHECKS_PER_GEMM = 12  # softmax checks whose weights share one GEMM: 120 of its 128 columns
BINARY_CHECKS_PER_GEMM = 16  # binary checks (a column each) sharing one GEMM: its 16 columns
GATHER_BATCHES = 32  # shuffled batches gathered in one piece, ahead of the steps that use them


class Validation(tuple):
    """(val_loss, accuracy_train, accuracy_val), as the course's validation_step returns them; `train_loss`, the loss
    over the whole training set, comes beside them (from the forward pass that accuracy_train needs)."""

    def __new__(cls, val_loss: float, accuracy_train: float, accuracy_val: float, train_loss: float | None = None):
        self = super().__new__(cls, (val_loss, accuracy_train, accuracy_val))
        self.train_loss = train_loss
        return self


@dataclass
class _Set:
    """One of the sets a check evaluates: X (N, D), targets as the loss takes them, the group's logits (N, columns),
    and each check's logits class-major (checks per GEMM, K, N), for fast reductions over classes."""

    X: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    by_class: np.ndarray


class Engine:
    """What every engine shares. Used as a context: BLAS runs single-threaded inside (OpenBLAS's threads cost more
    than they give on matrices this small, 5x on 2 cores, and no bit of the result then depends on the number of
    cores). `batches` moves the trainer's progress bar, if any, a step after each batch."""

    def __init__(self, trainer):
        self.trainer = trainer

    def __enter__(self):
        self._blas = threadpoolctl.ThreadpoolController().limit(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc) -> None:
        self._blas.__exit__(*exc)

    def batches(self, epoch: int):
        """The epoch's (X_batch, Y_batch), in utils.batch_indices' order."""
        return counted(self._batches(epoch), self.trainer.progress)

    def _batches(self, epoch: int):
        raise NotImplementedError


class FastEngine(Engine):
    """Grouped validation checks on a thread pool, batches gathered ahead; for a BaseTrainer whose validation_step
    is the base class's (the checks compute the same). Used as a context: threads live inside."""

    def __init__(self, trainer):
        super().__init__(trainer)
        self.model = trainer.model
        k = self.model.num_outputs
        self.k = k
        self.group = BINARY_CHECKS_PER_GEMM if k == 1 else CHECKS_PER_GEMM
        columns = -(-self.group * k // 16) * 16
        dtype = self.model.w.dtype
        self.sets = [_Set(X, _labels(Y, k), np.empty((len(X), columns), dtype),
                          np.empty((self.group, k, len(X)), dtype))
                     for X, Y in ((trainer.X_val, trainer.Y_val), (trainer.X_train, trainer.Y_train))]
        self.blocks = [(s, slice(a, b)) for s in self.sets
                       for a, b in _pairs(np.linspace(0, len(s.X), -(-len(s.X) // CHECK_BLOCK_ROWS) + 1).astype(int))]
        self.weights = [np.zeros((self.model.w.shape[0], columns), dtype) for _ in range(2)]  # one fills, one computes
        self.side = 0
        self.filling: list[int] = []  # the steps of the checks in weights[side]
        self.in_flight: tuple[list, list[int], np.ndarray] | None = None
        self.ready: list = []
        self.snapshots: dict[int, np.ndarray] = {}  # step -> the weights after it, while its result may be pending

    def __enter__(self) -> FastEngine:
        super().__enter__()
        self._pool = ThreadPoolExecutor(max_workers=min(CHECK_WORKERS, os.cpu_count() or 1))
        self._gatherer = ThreadPoolExecutor(max_workers=1)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._pool.shutdown(cancel_futures=True)
            self._gatherer.shutdown(cancel_futures=True)
        finally:
            super().__exit__(*exc)

    # ------------------------------------------------------------ batches

    def _batches(self, epoch: int):
        """Slices if unshuffled, else gathered ahead."""
        t = self.trainer
        X, Y, size = t.X_train, t.Y_train, t.batch_size
        if not t.shuffle_dataset:
            for start in range(0, len(X) // size * size, size):
                yield X[start:start + size], Y[start:start + size]
            return
        order = np.concatenate(utils.batch_indices(len(X), size, True, True, t.rng))
        piece = min(len(order), GATHER_BATCHES * size)
        pieces = [order[start:start + piece] for start in range(0, len(order), piece)]
        buffers = [(np.empty((piece, X.shape[1]), X.dtype), np.empty((piece, *Y.shape[1:]), Y.dtype)) for _ in range(2)]
        gathering = self._gatherer.submit(_gather, X, Y, pieces[0], buffers[0])
        for index, rows in enumerate(pieces):
            gathering.result()
            if index + 1 < len(pieces):
                gathering = self._gatherer.submit(_gather, X, Y, pieces[index + 1], buffers[(index + 1) % 2])
            X_piece, Y_piece = buffers[index % 2]
            for start in range(0, len(rows), size):
                yield X_piece[start:start + size], Y_piece[start:start + size]

    # ------------------------------------------------------------ checks

    def check(self, step: int) -> None:
        """Start the check of the weights after `step`: they join a group, computed once the group is full."""
        slot = len(self.filling)
        w = self.model.w
        self.weights[self.side][:, slot * self.k:(slot + 1) * self.k] = w
        self.snapshots[step] = w.copy()
        self.filling.append(step)
        if len(self.filling) == self.group:
            self.ready += self._collect()
            self._submit()

    def results(self, wait: bool) -> list:
        """[(step, Validation)] of the checks finished since the last call, in order; with `wait`, every one."""
        if wait:
            self.ready += self._collect()
            if self.filling:
                self._submit()
                self.ready += self._collect()
        ready, self.ready = self.ready, []
        for step in [s for s in self.snapshots if ready and s < ready[0][0]]:  # passed without a stop: not needed
            del self.snapshots[step]
        return ready

    def rewind(self, step: int) -> None:
        """The model back to the weights after `step` (training ran ahead of its check), in its own array."""
        self.model.w[...] = self.snapshots[step]

    def _submit(self) -> None:
        weights = self.weights[self.side]
        gemms = [self._pool.submit(np.matmul, s.X[rows], weights, out=s.logits[rows]) for s, rows in self.blocks]
        # queued after the GEMM blocks, so on any number of workers a results task only waits for started ones
        futures = [self._pool.submit(self._results, gemms, slot) for slot in range(len(self.filling))]
        self.in_flight = futures, self.filling
        self.filling, self.side = [], 1 - self.side

    def _collect(self) -> list:
        if self.in_flight is None:
            return []
        futures, steps = self.in_flight
        self.in_flight = None
        return [(step, future.result()) for step, future in zip(steps, futures)]

    def _results(self, gemms: list, slot: int):
        """The Validation of a group's check: the model's activation, utils.cross_entropy_loss and utils.accuracy
        on each set's logits, as validation_step computes them from forward."""
        for gemm in gemms:
            gemm.result()
        values = []
        for s in self.sets:
            logits = s.logits[:, slot * self.k:(slot + 1) * self.k]
            if self.k > 1:
                np.copyto(s.by_class[slot].T, logits)
                logits = s.by_class[slot].T  # (N, K) again, but each class contiguous
            outputs = self.model.activation(logits, out=logits)
            values.append((utils.cross_entropy_loss(s.targets, outputs), utils.accuracy(s.targets, outputs)))
        (val_loss, val_accuracy), (train_loss, train_accuracy) = values
        return Validation(val_loss, train_accuracy, val_accuracy, train_loss)


def _labels(Y: np.ndarray, k: int) -> np.ndarray:
    """Softmax targets as labels (N,): the checks' loss then reads one probability a row, not all of them (the
    same loss, utils.cross_entropy_loss either way)."""
    return utils.as_labels(Y, k) if k > 1 and Y.ndim == 2 and Y.shape[1] == k else Y


def _pairs(edges: np.ndarray) -> list[tuple[int, int]]:
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _gather(X: np.ndarray, Y: np.ndarray, rows: np.ndarray, buffers: tuple[np.ndarray, np.ndarray]) -> None:
    X_piece, Y_piece = buffers
    np.take(X, rows, axis=0, out=X_piece[:len(rows)], mode="clip")  # mode "clip": "raise" would copy twice
    np.take(Y, rows, axis=0, out=Y_piece[:len(rows)], mode="clip")
