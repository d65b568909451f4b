"""The judges' side of the checks: the assignment's definitions (their own, never in the student's process), the
inputs a check draws from a seed, and the forms a result takes (support/probes.py is the student's side)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STUDENT_MODULES = ("utils", "trainer")  # what the student writes; a failing line is looked for in these files
N = 6  # examples in a probe's batch: "N times too large" is told apart from K = 10 classes
K = 10
D = 785  # 784 pixels and the bias input
SEED = 20220101  # make check's; make grade draws its own
DONE, NOT_STARTED, FAILING = "done", "not started", "failing"


def sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def softmax(z: np.ndarray) -> np.ndarray:
    """Along the last axis, without overflow."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mean_cross_entropy(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """C = -(1/N) sum_n [y ln p + (1 - y) ln(1 - p)] for one output, -(1/N) sum_n sum_k y_k ln p_k for K; over the
    last two axes (N, K), so a stack of batches gives one loss each."""
    if probs.shape[-1] == 1:
        per_example = targets * np.log(probs) + (1 - targets) * np.log(1 - probs)
    else:
        per_example = targets * np.log(probs)
    return -per_example.sum(axis=(-2, -1)) / probs.shape[-2]


def numeric_gradient(X: np.ndarray, targets: np.ndarray, w: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Centred differences (D, K) of the mean cross-entropy of f(X w) at w, f the sigmoid for one output, softmax for
    more: every weight moved by +-eps in turn (weight j of output k moves the logits of output k by eps X[:, j])."""
    activation = sigmoid if w.shape[1] == 1 else softmax
    logits = X @ w
    grad = np.empty_like(w)
    for k in range(w.shape[1]):
        plus = np.repeat(logits[None], X.shape[1], axis=0)  # (D, N, K): one batch of logits per weight moved
        minus = plus.copy()
        plus[:, :, k] += eps * X.T
        minus[:, :, k] -= eps * X.T
        grad[:, k] = (mean_cross_entropy(targets, activation(plus)) -
                      mean_cross_entropy(targets, activation(minus))) / (2 * eps)
    return grad


def images(rng: np.random.Generator) -> np.ndarray:
    X = rng.integers(0, 256, size=(N, 784)).astype(np.uint8)
    X[0, :2] = 0, 255
    return X


def inputs_matrix(rng: np.random.Generator) -> np.ndarray:
    """(N, D) as pre_process_images gives them: pixels in [-1, 1], the bias input 1 last."""
    return np.hstack([rng.uniform(-1, 1, size=(N, D - 1)), np.ones((N, 1))])


def binary_targets(rng: np.random.Generator) -> np.ndarray:
    y = rng.integers(0, 2, size=(N, 1)).astype(np.float64)
    y[:2, 0] = 0, 1
    return y


def one_hot_targets(rng: np.random.Generator) -> np.ndarray:
    labels = rng.permutation(K)[:N]
    return np.eye(K)[labels]


def weights(rng: np.random.Generator, outputs: int) -> np.ndarray:
    return rng.normal(scale=1 / math.sqrt(D), size=(D, outputs))  # logits of order one


def gradient_inputs(outputs: int) -> Callable:
    def make(rng):
        X, w = inputs_matrix(rng), weights(rng, outputs)
        targets = binary_targets(rng) if outputs == 1 else one_hot_targets(rng)
        probs = sigmoid(X @ w) if outputs == 1 else softmax(X @ w)
        return {"X": X, "w": w, "targets": targets, "outputs": probs,
                "model": "BinaryModel" if outputs == 1 else "SoftmaxModel"}
    return make


@dataclass
class Problem:
    """What a judge found wrong: a kind (a short name: sign, batch_size, l2_missing, ...) and plain words."""

    kind: str
    message: str


@dataclass
class Result:
    check: str
    task: str
    status: str  # done, not started or failing
    function: str  # the function checked (or the blank it ran into)
    file: str = ""
    line: int | None = None
    kind: str = ""  # for failing: what kind of mistake (see Problem); for not started: "blank"
    message: str = ""
    seconds: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else self.file


@dataclass(frozen=True)
class Check:
    name: str  # unique, short: "cross_entropy_loss (binary)"
    task: str  # "2a"
    function: str  # "utils:BinaryModel.loss_gradient": module, then the qualified name
    points: int  # what it is worth in make grade
    inputs: Callable  # rng -> dict of arrays and numbers (what the probe is given)
    probe: str  # the name of its probe in support/probes.py: it calls `function` on the inputs
    judge: Callable  # (inputs, data) -> Problem or None
    course: bool = False  # one of the course's own self-checks


def as_array(value) -> np.ndarray | None:
    """An array back from the wire's form, as float64 (None when it was not an array: the student returned something
    else)."""
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"], dtype=np.float64).reshape(value["shape"])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.asarray(float(value))
    return None


def returned_array(data: dict, shape: tuple | None = None) -> tuple[np.ndarray | None, Problem | None]:
    """The returned array, or the problem with it: not an array, or not of `shape`."""
    value = as_array(data.get("value"))
    if value is None:
        return None, Problem("type", f"returns {data.get('type', 'nothing')}, not a numpy array")
    if shape is not None and value.shape != shape:
        return None, Problem("shape", f"returns an array of shape {value.shape}; {shape} is expected")
    return value, None


def close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and bool(np.allclose(a, b, rtol=tol, atol=tol))


def scale_of(got: np.ndarray, expected: np.ndarray) -> float | None:
    """alpha when got = alpha * expected (within 1e-4 of |expected|), else None."""
    norm = float(np.vdot(expected, expected))
    if norm == 0 or not np.all(np.isfinite(got)):
        return None
    alpha = float(np.vdot(got, expected)) / norm
    return alpha if np.linalg.norm(got - alpha * expected) <= 1e-4 * math.sqrt(norm) else None


def near(alpha: float, value: float) -> bool:
    return abs(alpha - value) <= 1e-3 * max(1.0, abs(value))
