"""The machinery that makes `trainer.train` fast, behind a small interface (`FastPath`); the loop itself is there.

What it does, and why (measured on the project's 2-core machine; `make bench` prints the figures):
- the weights live in the first K columns of a zero-padded (D, 16) array: OpenBLAS runs (n, 785) @ (785, 16)
  faster than (n, 785) @ (785, 10); the padding stays zero (its logits, delta and gradient columns are 0);
- BLAS runs single-threaded, so no sum, and no bit of the history, depends on the number of cores;
- a validation check reads all the data; `CHECKS_PER_GEMM` checks share one GEMM (their weights side by side),
  computed in fixed row blocks on a thread pool while training goes on, so results come back a few checks late
  and `rollback` returns training to a check's step when that check says stop;
- shuffled batches are gathered ahead on a thread of their own, so each step reads a contiguous view.
`tests/test_trainer.py` shows the result equals a loop that waits for every check.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import threadpoolctl

from utils import LinearModel, batch_indices

CHECK_BLOCK_ROWS = 7500  # most rows per block of a check's GEMM; each set is cut into equal blocks
CHECK_WORKERS = 2
CHECKS_PER_GEMM = 12  # softmax checks whose weights share one GEMM: 120 of its 128 columns
BINARY_CHECKS_PER_GEMM = 16  # binary checks (a column each) sharing one GEMM: its 16 columns
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

    One check alone is a GEMM with 10 columns over all the data, which OpenBLAS runs at about a fifth of its
    large-GEMM rate; so `CHECKS_PER_GEMM` snapshots share the columns of one weight matrix, and one GEMM per set
    gives the logits of all of them: the data is read once for twelve checks, at about 85% of that rate
    (measured on the project's machine). The GEMMs run in fixed blocks of rows on a thread pool (numpy releases
    the GIL in them), and then each check's losses and accuracies, while training goes on. `add` returns the
    results of the group before when a new group is full, `finish` the rest. The blocks are fixed and each
    block's GEMM is single-threaded, so the results do not depend on the number of workers or cores.
    """

    def __init__(self, pool: ThreadPoolExecutor, model: LinearModel, padded: int,
                 train: tuple[np.ndarray, np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray, np.ndarray]):
        """`train` and `val` are (X (N, D), labels (N,), targets) of each set."""
        self.pool, self.model = pool, model
        k = model.num_outputs
        self.group = group = BINARY_CHECKS_PER_GEMM if k == 1 else CHECKS_PER_GEMM
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
        if len(self.filling) < self.group:
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
             rng: np.random.Generator | np.random.RandomState | None):
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


class FastPath:
    """Buffers, threads and checks of one training run; `trainer.train` calls its methods.

    Inside `with`, the model's `w` and `grad` are views of the first K columns of the padded arrays `w` and
    `grad`; leaving copies the weights back into the caller's array (also after an error) and stops the threads.
    """

    def __init__(self, model: LinearModel, train: tuple[np.ndarray, np.ndarray, np.ndarray],
                 val: tuple[np.ndarray, np.ndarray, np.ndarray], batch_size: int):
        """`train` and `val` are (X (N, D), labels (N,), targets as the model's loss takes them) of each set."""
        k = model.num_outputs
        self.model, self.train, self.val, self.batch_size = model, train, val, batch_size
        self.padded = k if k == 1 else -(-k // 16) * 16
        self.w = np.zeros((model.w.shape[0], self.padded), dtype=model.dtype)
        self.w[:, :k] = model.w
        self.grad = np.zeros_like(self.w)
        self._logits = np.empty((batch_size, self.padded), dtype=model.dtype)

    def __enter__(self) -> FastPath:
        k = self.model.num_outputs
        self._caller_w, self.model.w, self.model.grad = self.model.w, self.w[:, :k], self.grad[:, :k]
        self._blas = _single_threaded_blas()
        self._blas.__enter__()
        self._pool = ThreadPoolExecutor(max_workers=min(CHECK_WORKERS, os.cpu_count() or 1))
        self._gatherer = ThreadPoolExecutor(max_workers=1)
        self._checker = _Checker(self._pool, self.model, self.padded, self.train, self.val)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._pool.shutdown()
            self._gatherer.shutdown()
            self._blas.__exit__(*exc)
        finally:
            self._caller_w[...] = self.model.w
            self.model.w, self.model.grad = self._caller_w, self.model.grad.copy()

    def batches(self, num_epochs: int, rng: np.random.Generator | np.random.RandomState | None):
        """(epoch, X_batch (B, D), targets_batch) of every step: in order, or each epoch shuffled by `rng`."""
        X, _, targets = self.train
        return _batches(self._gatherer, X, targets, self.batch_size, num_epochs, rng)

    def logits(self, X_batch: np.ndarray) -> np.ndarray:
        """z = X_batch w (B, K), in a buffer that the model's `loss_and_delta` then overwrites with the delta."""
        np.matmul(X_batch, self.w, out=self._logits)
        return self._logits[:, :self.model.num_outputs]

    def gradient(self, X_batch: np.ndarray) -> np.ndarray:
        """dJ/dw (D, K): the model's `gradient` of the delta left in the logits buffer."""
        self.model.gradient(X_batch, self._logits, out=self.grad)
        return self.model.grad

    def update(self, step_size) -> None:
        """w <- w - step_size * grad (step_size in the model's dtype)."""
        self.w -= step_size * self.grad

    def check(self, step: int, epoch: int) -> list:
        """Start the check of the weights after `step`; [(check, (val loss, val acc, train loss, train acc))] of the
        checks that have finished, in order (a few checks behind)."""
        return self._checker.add(step, epoch, self.w, self.grad)

    def finish(self) -> list:
        """The results of every check not yet returned, in order."""
        return self._checker.finish()

    def rollback(self, check: _Check) -> None:
        """Training back to the weights and gradient right after `check`'s step."""
        self.w[:, :self.model.num_outputs], self.grad[...] = check.w, check.grad
