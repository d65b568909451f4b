"""The engine that makes `trainer.BaseTrainer.train` fast without changing what it computes: `FastEngine`.

The loop asks an engine for each epoch's batches, starts a validation check after every (N // batch_size) // 5-th
step, takes the results as they come, and rewinds when one says stop. The plain engine (trainer.py) runs each check
at once. This one runs the trainer's own validation_step, unchanged, on a copy of the trainer that holds a snapshot
of the weights, on a thread pool while training goes on; so a check's forward passes, losses and accuracies are the
student's functions on the same numbers, and the history is the plain engine's, bit for bit (tests/test_trainer.py).
Results come back a few checks late; when one says stop, `rewind` returns the model to the weights after that check,
so a stop found late leaves what a loop that waited for every check leaves. The batches are utils.batch_loader's, as
the plain engine takes them. BLAS runs single-threaded where the experiments train (experiments.fit): the checks'
threads use the cores, and no bit of the result depends on their number.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import Future, ThreadPoolExecutor

from trainer import PlainEngine

CHECK_WORKERS = 2  # threads computing checks while the loop trains (at most the cores there are)
AHEAD = 6  # with early stopping, checks in flight before the loop waits for the oldest: how far it may overrun a stop


class FastEngine(PlainEngine):
    """validation_step on weight snapshots, on a thread pool; rewinds when a late result says stop."""

    def __enter__(self) -> FastEngine:
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(CHECK_WORKERS, os.cpu_count() or 1)))
        self.pending: list[tuple[int, Future]] = []
        self.snapshots: dict = {}  # step -> the weights after it, while its result is not yet taken
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(cancel_futures=True)

    def check(self, step: int) -> None:
        """Start the check of the weights after `step`: a copy of the trainer holding a copy of the model with a
        snapshot of its weights runs validation_step on the pool."""
        trainer = self.trainer
        snapshot = copy.copy(trainer.model)
        snapshot.w = trainer.model.w.copy()
        shadow = copy.copy(trainer)
        shadow.model = snapshot
        self.snapshots[step] = snapshot.w
        self.pending.append((step, self._pool.submit(shadow.validation_step)))
        if trainer.early_stopping and len(self.pending) > AHEAD:  # no training far past a stop found late
            self.pending[0][1].result()

    def results(self, wait: bool) -> list:
        """[(step, Validation)] of the checks finished since the last call, in order; with `wait`, every one."""
        ready = []
        while self.pending and (wait or self.pending[0][1].done()):
            step, future = self.pending.pop(0)
            ready.append((step, future.result()))
        for step in [s for s in self.snapshots if ready and s < ready[0][0]]:  # passed without a stop: not needed
            del self.snapshots[step]
        return ready

    def rewind(self, step: int) -> None:
        """The model back to the weights after `step` (training ran ahead of its check), in its own array."""
        self.trainer.model.w[...] = self.snapshots[step]
