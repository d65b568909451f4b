"""The hidden checks: the course's official numbers (experiments.OFFICIAL_2022), reached by this source's own
training, the reference, with one piece of it the hand-in's, asked for over the hand-in's process at each use:
Task 2d's stop comes from its should_early_stop, 2e's from its shuffled order, the 4e squared norms from its L2 term.
So each tests its own task's code in the loop, on MNIST with the course's values, and a mistake elsewhere costs
nothing here. The instructor's alone: the student version has no grading/ (pyproject.toml's `instructor`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

import experiments
import trainer
import utils
from grading.runner import Ended, Sandbox
from mnist import FILES, cache_dir

CALL_SECONDS = 10.0  # for one call of the hand-in's function
CALLS = itertools.count()
DEADLINE = [math.inf]  # when the hidden check now running must end (time.monotonic()); set by the grader


@dataclass(frozen=True)
class Hidden:
    name: str
    task: str
    points: int
    function: str  # the hand-in's function the reference's training asks for
    run: object  # (sandbox) -> (passed, message)


class HandInFailed(Exception):
    """The hand-in's function raised, or its process ended, during the reference's training."""


def ask(box: Sandbox, message: dict, arrays=()) -> tuple[dict, list]:
    """A call of the hand-in's function over its process; HandInFailed if it raised, overran or ended."""
    message = {"id": next(CALLS), **message}
    left = DEADLINE[0] - time.monotonic()
    if left <= 0:
        box.stop()
        raise HandInFailed("the hidden check ran out of time (the calls of the hand-in's function were too slow)")
    try:
        answer, out = box.ask(message, arrays, timeout=min(CALL_SECONDS, left), doing=f"its {message['call']}")
    except Ended as exc:
        raise HandInFailed(str(exc)) from None
    if "error" in answer:
        raise HandInFailed(f"its {message['call']} raised {answer['error']}")
    return answer, out


@contextlib.contextmanager
def swapped(module, name: str, replacement):
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def _binary_data():
    X_raw, Y_train, X_val_raw, Y_val = utils.load_binary_dataset(2, 3, train_size=20000, dataset="mnist")
    return (utils.pre_process_images(X_raw, "float32"), Y_train, utils.pre_process_images(X_val_raw, "float32"),
            Y_val)


def _early(box: Sandbox, shuffled: bool):
    """The course's 2d (or, shuffled, 2e) run: the reference's training, the hand-in's rule or order inside."""
    course = experiments.COURSE_2022["task2"]
    settings = dict(learning_rate=course["learning_rate"], batch_size=course["batch_size"],
                    num_epochs=course["num_epochs_early_stopping"],
                    early_stopping_patience=course["early_stopping_patience"])
    data = _binary_data()
    if not shuffled:
        def rule(losses: dict, num_steps: int = 10) -> bool:
            return ask(box, {"call": "should_early_stop", "losses": list(losses.values()), "num_steps": num_steps})[
                0]["value"]

        with swapped(trainer, "should_early_stop", rule):
            return experiments.fit(utils.BinaryModel(dtype="float32"), *data, **settings)
    reference = utils.batch_indices

    def order(num_examples, batch_size, shuffle=False, drop_last=True, rng=None):
        if not shuffle:
            return reference(num_examples, batch_size, shuffle, drop_last, rng)
        batches = ask(box, {"call": "batches", "seed": course["shuffle_seed"], "n": num_examples,
                            "batch_size": batch_size})[0]["value"]
        return [np.asarray(b, dtype=np.intp) for b in batches]

    with swapped(utils, "batch_indices", order):
        return experiments.fit(utils.BinaryModel(dtype="float32"), *data, **settings, shuffle=True,
                               rng=np.random.RandomState(course["shuffle_seed"]))


def stop(shuffled: bool):
    """The check of the official stop of 2d (the hand-in's should_early_stop) or, shuffled, of 2e (its order)."""
    task, piece = ("2e", "shuffled order") if shuffled else ("2d", "should_early_stop")

    def check(box: Sandbox) -> tuple[bool, str]:
        official = experiments.OFFICIAL_2022[f"task{task}_stop_epoch"]
        run = _early(box, shuffled)
        said = f"stops in epoch {run.stop_epoch}" if run.stopped_early else "does not stop"
        return run.stopped_early and abs(run.stop_epoch - official) <= 1, (
            f"the course's {task} run with your {piece} {said}; the official solution: epoch {official} (within 1)")
    return check


def norms_4e(box: Sandbox) -> tuple[bool, str]:
    """Each lambda's softmax run, the reference's, with the hand-in's L2 term added to the gradient at every step."""
    course, official = experiments.COURSE_2022["task4"], experiments.OFFICIAL_2022["task4e_squared_norms"]
    X_raw, Y_train, X_val_raw, Y_val = utils.load_full_mnist(train_size=course["train_size"], dataset="mnist")
    data = (utils.pre_process_images(X_raw, "float32"), Y_train[:, 0], utils.pre_process_images(X_val_raw, "float32"),
            Y_val[:, 0])

    class Swapped(utils.SoftmaxModel):
        def backward(self, X, outputs, targets):
            self.grad = self.loss_gradient(X, outputs, targets)
            if self.l2_reg_lambda:
                self.grad += ask(box, {"call": "l2", "lambda": self.l2_reg_lambda}, [self.w])[1][0]

    found = {}
    for lam in sorted(official, reverse=True):
        model = Swapped(l2_reg_lambda=lam, dtype="float32")
        experiments.fit(model, *data, learning_rate=course["learning_rate"], batch_size=course["batch_size"],
                        num_epochs=course["num_epochs"], early_stopping_patience=course["early_stopping_patience"],
                        shuffle=True, rng=np.random.RandomState(course["shuffle_seed"]))
        found[lam] = float(np.sum(model.w.astype(np.float64) ** 2))
    worst = max(abs(found[lam] - official[lam]) / official[lam] for lam in official)
    listed = ", ".join(f"{found[lam]:.2f} (official about {official[lam]:g}) for lambda = {lam:g}" for lam in found)
    return worst <= 0.1, f"with your L2 term the squared norms are {listed}: within 10% of the official plot's " \
                         f"{'each' if worst <= 0.1 else 'not each'} (worst {100 * worst:.0f}%)"


HIDDEN = [
    Hidden("hidden: the official 2d stop (epoch 33)", "2d", 1, "trainer:should_early_stop", stop(shuffled=False)),
    Hidden("hidden: the official 2e stop (epoch 16)", "2e", 1, "utils:batch_indices", stop(shuffled=True)),
    Hidden("hidden: the official 4e squared norms", "4a", 1, "utils:LinearModel.backward", norms_4e),
]


def mnist_here() -> bool:
    """Whether MNIST is in its cache (loading verifies it): the official numbers are MNIST's, with the course's
    values."""
    return all((cache_dir("mnist") / name).is_file() for name in FILES)
