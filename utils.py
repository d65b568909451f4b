"""The course's functions (TDT4265 2022, assignment 1), with its names and semantics, in pure numpy: preprocessing,
one-hot, the batch loader, the data sets, the two models, the cross-entropy, accuracy and the gradient check.

Shapes use fixed symbols: X (N, D) with D = 785 (784 pixels in [-1, 1] and a bias column of ones), labels y (N,) or
(N, 1) in 0..K-1, one-hot Y (N, K), binary targets (N, 1) in {0, 1}, weights w (D, K), outputs (probabilities)
(N, K). Training (trainer.py) runs these functions: the activation, the loss, `backward` and the update.
Where ours go beyond the course's (labels (N,) as targets, a dtype, a Generator for shuffling, output buffers), it
is through keywords whose defaults are the course's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

import mnist

NUM_PIXELS = 784
NUM_INPUTS = NUM_PIXELS + 1  # the bias trick: a column of ones appended to X


# ---------------------------------------------------------------- data


def pre_process_images(X: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Pixels (N, 784) in [0, 255] -> (N, 785) in [-1, 1], last column ones."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != NUM_PIXELS:
        hint = " (already preprocessed?)" if X.ndim == 2 and X.shape[1] == NUM_INPUTS else ""
        raise ValueError(f"pre_process_images expects images of shape (N, {NUM_PIXELS}), received {X.shape}{hint}")
    if X.dtype != np.uint8:
        if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
            raise ValueError(f"pre_process_images expects numeric pixels, received dtype {X.dtype}")
        if X.size and not (np.all(np.isfinite(X)) and X.min() >= 0 and X.max() <= 255):
            raise ValueError(
                f"pre_process_images expects pixels in [0, 255], received values in [{X.min()}, {X.max()}]"
                " (NaN or infinity included?); pass the raw uint8 images"
            )
    # BEGIN SOLUTION Task 2a: scale the pixels from [0, 255] to [-1, 1] (x / 127.5 - 1) and append a column of
    # ones, the bias input, as the last column; return an array (N, 785) of `dtype`
    out = np.empty((X.shape[0], NUM_INPUTS), dtype=dtype)
    np.divide(X, 127.5, out=out[:, :NUM_PIXELS], casting="unsafe")
    out[:, :NUM_PIXELS] -= 1
    out[:, NUM_PIXELS] = 1
    return out
    # END SOLUTION


def check_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels (N,) or (N, 1) of integers in [0, num_classes) -> (N,) intp; ValueError otherwise."""
    y = np.asarray(y)
    if y.dtype == np.intp and y.ndim == 1 and (not y.size or (y.min() >= 0 and y.max() < num_classes)):
        return y  # already labels (the trainer's batches): no copy
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), received {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ValueError(f"labels must be integers, received dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), received values in [{y.min()}, {y.max()}]")
    return y.astype(np.intp)


def one_hot_encode(Y: np.ndarray, num_classes: int, dtype=np.float64) -> np.ndarray:
    """Labels (N, 1) (or (N,)) in [0, num_classes) -> one-hot (N, num_classes)."""
    y = check_labels(Y, num_classes)  # labels (N,), checked
    # BEGIN SOLUTION Task 3a: return (N, num_classes) of `dtype`: zeros, and a 1 in column y[n] of row n
    one_hot = np.zeros((y.shape[0], num_classes), dtype=dtype)
    one_hot[np.arange(y.shape[0]), y] = 1
    return one_hot
    # END SOLUTION


def batch_indices(num_examples: int, batch_size: int, shuffle: bool = False, drop_last: bool = True,
                  rng: np.random.Generator | np.random.RandomState | None = None) -> list[np.ndarray]:
    """One epoch's batches as index arrays: N // batch_size of them (with `drop_last`, the course's way for
    training), else the last partial one too.

    Without `shuffle`, 0..N-1 in order. With it, as the course's batch_loader does: `shuffle` of a fresh list 0..N-1
    by numpy's global generator (which the course's task scripts seed), or by `rng`: a RandomState draws the same
    orders without global state, a Generator draws `permutation`s.
    """
    if not 1 <= batch_size <= num_examples:
        raise ValueError(f"batch_size must be in [1, {num_examples}] (the number of examples), received {batch_size}")
    if not shuffle:
        order = np.arange(num_examples)
    elif isinstance(rng, np.random.Generator):  # ours, beside the course's: a Generator's permutation
        order = rng.permutation(num_examples)
    else:
        # BEGIN SOLUTION Task 2e: a fresh order of 0..N-1 for this epoch in `order`, shuffled as the course's
        # batch_loader shuffles it: the list 0..N-1 shuffled by rng (a RandomState; numpy.random's own when None)
        indices = list(range(num_examples))
        (rng or np.random).shuffle(indices)
        order = np.asarray(indices)
        # END SOLUTION
    num_batches = num_examples // batch_size if drop_last else -(-num_examples // batch_size)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(num_batches)]


def batch_loader(X: np.ndarray, Y: np.ndarray, batch_size: int, shuffle: bool = False, drop_last: bool = True, *,
                 rng: np.random.Generator | np.random.RandomState | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """One epoch of (X_batch (B, D), Y_batch (B, ...)), as the course's batch_loader yields them; inputs untouched."""
    if len(X) != len(Y):
        raise ValueError(f"X and Y must have the same length, received {len(X)} and {len(Y)}")
    for idx in batch_indices(len(X), batch_size, shuffle, drop_last, rng):
        yield X[idx], Y[idx]


def binary_prune_dataset(class1: int, class2: int, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images of `class1` (label 1) and `class2` (label 0) only: X (M, 784), Y (M,) uint8."""
    keep = (Y == class1) | (Y == class2)
    return X[keep], (Y[keep] == class1).astype(np.uint8)


def load_binary_dataset(class1: int = 2, class2: int = 3, *, train_size: int = 20000, val_size: int | None = None,
                        rng: np.random.Generator | None = None, dataset: str = "mnist", cache_dir=None):
    """(X_train, Y_train, X_val, Y_val) of `class1` (label 1) and `class2` (label 0): X uint8 (N, 784), Y (N, 1).

    The split is load_full_mnist's, then pruned to the two classes.
    """
    for c in (class1, class2):
        if not (isinstance(c, (int, np.integer)) and 0 <= c <= 9):
            raise ValueError(f"classes must be digits 0..9, received {class1!r} and {class2!r}")
    if class1 == class2:
        raise ValueError(f"class1 and class2 must differ, received {class1} twice")
    X_train, Y_train, X_val, Y_val = mnist.split(*mnist.load(dataset, cache_dir), train_size, val_size, rng)
    X_train, Y_train = binary_prune_dataset(class1, class2, X_train, Y_train)
    X_val, Y_val = binary_prune_dataset(class1, class2, X_val, Y_val)
    return X_train, Y_train.reshape(-1, 1), X_val, Y_val.reshape(-1, 1)


def load_full_mnist(*, train_size: int = 20000, val_size: int | None = None, rng: np.random.Generator | None = None,
                    dataset: str = "mnist", cache_dir=None):
    """(X_train, Y_train, X_val, Y_val): X uint8 (N, 784), Y (N, 1) in 0..9.

    The course's final split: the first `train_size` images of the training set, and the test set as validation.
    With `rng` (a numpy Generator), random disjoint subsets of the training set of the given sizes instead.
    """
    X_train, Y_train, X_val, Y_val = mnist.split(*mnist.load(dataset, cache_dir), train_size, val_size, rng)
    return X_train, Y_train.reshape(-1, 1), X_val, Y_val.reshape(-1, 1)


# ---------------------------------------------------------------- activations and losses


def sigmoid(logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-z)) of the logits, elementwise; into `out` if given."""
    # BEGIN SOLUTION Task 2a: the logistic function of each logit, into `out` if it is given
    out = np.multiply(logits, 0.5, out=out)  # sigmoid(z) = (1 + tanh(z / 2)) / 2: no overflow for any |z|
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out
    # END SOLUTION


def softmax(logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logits (N, K) -> probabilities (N, K), each row exp(z_k) / sum_k' exp(z_k'); into `out` if given."""
    # BEGIN SOLUTION Task 3a: the probabilities (N, K), each row exp(z_k) / sum_k' exp(z_k'), into `out` if given
    row_max = logits[:, 0].copy()  # subtracted first: exp overflows for large logits otherwise
    for k in range(1, logits.shape[1]):  # column by column: ten times faster for ten classes than max(axis=1)
        np.maximum(row_max, logits[:, k], out=row_max)
    out = np.subtract(logits, row_max[:, None], out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out
    # END SOLUTION


def cross_entropy_loss(targets: np.ndarray, outputs: np.ndarray) -> float:
    """Mean cross-entropy over the batch of the outputs (probabilities) against the targets, as the course has it.

    Binary: targets and outputs (N, 1), C = -[y ln yhat + (1 - y) ln(1 - yhat)]. Softmax: outputs (N, K) and one-hot
    targets (N, K) (or labels (N,)), C = -sum_k y_k ln yhat_k. A probability that rounded to exactly 0 or 1 is taken
    as the nearest representable value inside (0, 1) of its dtype, so the loss stays finite.
    """
    outputs = np.asarray(outputs)
    targets = np.asarray(targets)
    if outputs.ndim != 2:
        raise ValueError(f"outputs must have shape (N, K), received {outputs.shape}")
    tiny, below_one = _open_unit_interval(outputs.dtype)
    if outputs.shape[1] == 1:
        if targets.shape != outputs.shape:
            raise ValueError(f"binary targets must have shape {outputs.shape} like the outputs, received "
                             f"{targets.shape}")
        p = np.minimum(np.maximum(outputs, tiny), below_one)  # inside (0, 1): the logs stay finite
        # BEGIN SOLUTION Task 2a: the cross-entropy of p (the outputs) against the targets, averaged over the batch,
        # as a float
        return -float((targets * np.log(p) + (1 - targets) * np.log1p(-p)).sum()) / len(outputs)
        # END SOLUTION
    if targets.shape != outputs.shape:  # labels (N,): ours, beside the course's one-hot
        labels = check_labels(targets, outputs.shape[1])
        if labels.shape[0] != outputs.shape[0]:
            raise ValueError(f"{outputs.shape[0]} rows of outputs but {labels.shape[0]} targets")
        targets = one_hot_encode(labels, outputs.shape[1], dtype=outputs.dtype)
    # BEGIN SOLUTION Task 3a: the cross-entropy of the outputs against the one-hot targets, averaged over the batch,
    # as a float; take the outputs into [tiny, below_one] first, as above, so the logs stay finite
    log_probs = np.maximum(outputs, tiny)
    np.minimum(log_probs, below_one, out=log_probs)
    np.log(log_probs, out=log_probs)
    return -float(np.vdot(targets, log_probs)) / len(outputs)  # sum_n sum_k y_nk ln yhat_nk, one pass
    # END SOLUTION


def _open_unit_interval(dtype) -> tuple[float, float]:
    """The smallest normal number and the largest number below 1 of a float dtype."""
    if dtype not in _UNIT_INTERVAL:
        info = np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64)
        _UNIT_INTERVAL[dtype] = info.tiny, 1 - info.epsneg
    return _UNIT_INTERVAL[dtype]


_UNIT_INTERVAL: dict = {}  # dtype -> (tiny, the largest number below 1)


def as_labels(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels (N,) or (N, 1), or one-hot (N, K) -> labels (N,) intp."""
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] == num_classes and num_classes > 1:
        labels = targets.argmax(axis=1)
        # a 1 where each row's largest entry is, and N nonzero entries in all: then exactly one a row
        if np.count_nonzero(targets) != len(targets) or not np.all(targets[np.arange(len(targets)), labels] == 1):
            raise ValueError("one-hot targets must have exactly one 1 per row and zeros elsewhere")
        return labels
    return check_labels(targets, num_classes)


# ---------------------------------------------------------------- models


class LinearModel:
    """A single linear layer w (D, K), zeros to start; `forward` gives probabilities, `backward` sets `grad`."""

    num_outputs: int

    def __init__(self, l2_reg_lambda: float = 0.0, dtype=np.float64, num_inputs: int = NUM_INPUTS):
        if not (np.isfinite(l2_reg_lambda) and l2_reg_lambda >= 0):
            raise ValueError(f"l2_reg_lambda must be a finite number >= 0, received {l2_reg_lambda!r}")
        self.l2_reg_lambda = float(l2_reg_lambda)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, received {self.dtype}")
        self.I = num_inputs  # the course's name for the number of inputs
        self.w = np.zeros((num_inputs, self.num_outputs), dtype=self.dtype)
        self.grad: np.ndarray | None = None

    def forward(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X (N, D) -> outputs yhat = f(X w), probabilities (N, K); into `out` (N, K) if given."""
        if X.ndim != 2 or X.shape[1] != self.w.shape[0]:
            raise ValueError(f"X must have shape (N, {self.w.shape[0]}), received {X.shape}; "
                             "did you forget pre_process_images (the bias column)?")
        # BEGIN SOLUTION Task 2a: the outputs f(X w) (N, K), f the model's activation (sigmoid or softmax), into
        # `out` if given
        logits = np.matmul(X, self.w, out=out)
        return self.activation(logits, out=logits)  # in place: the logits become the probabilities
        # END SOLUTION

    def activation(self, logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The model's f: sigmoid (BinaryModel) or softmax (SoftmaxModel)."""
        raise TypeError(f"{type(self).__name__} has no activation: use BinaryModel or SoftmaxModel")

    def backward(self, X: np.ndarray, outputs: np.ndarray, targets: np.ndarray) -> None:
        """Set `grad` (D, K) to the gradient of the mean cross-entropy (`loss_gradient`) plus that of lambda R(w),
        R(w) = 1/2 sum w^2. Targets as the loss takes them (labels (N,) too); outputs left untouched."""
        if outputs.shape != (X.shape[0], self.num_outputs):
            raise ValueError(f"outputs must have shape {(X.shape[0], self.num_outputs)}, received {outputs.shape}")
        if np.shape(targets) != outputs.shape:  # labels (N,): ours, beside the course's targets
            labels = check_labels(targets, max(2, self.num_outputs))
            targets = (labels[:, None].astype(outputs.dtype) if self.num_outputs == 1
                       else one_hot_encode(labels, self.num_outputs, dtype=outputs.dtype))
        self.grad = self.loss_gradient(X, outputs, targets)
        if self.l2_reg_lambda:
            # BEGIN SOLUTION Task 4a: add the gradient of lambda R(w), R(w) = 1/2 sum w^2 (Task 4a), to self.grad
            self.grad += self.dtype.type(self.l2_reg_lambda) * self.w
            # END SOLUTION

    def loss_gradient(self, X: np.ndarray, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The gradient (D, K) of the cross-entropy averaged over the batch, for inputs X (N, D), outputs and targets
        (N, K): the model's own (Task 1)."""
        raise TypeError(f"{type(self).__name__} has no loss: use BinaryModel or SoftmaxModel")

    def zero_grad(self) -> None:
        self.grad = None


class BinaryModel(LinearModel):
    """Logistic regression: yhat = sigmoid(X w), w (785, 1); class 1 when yhat >= 0.5."""

    num_outputs = 1

    def activation(self, logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return sigmoid(logits, out=out)

    def loss_gradient(self, X: np.ndarray, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The gradient (D, 1) of the mean binary cross-entropy: X (N, D), outputs and targets (N, 1)."""
        # BEGIN SOLUTION Task 2a: return the gradient (D, 1) of the cross-entropy averaged over the N examples (Task 1a)
        grad = X.T @ (outputs - targets)
        grad *= self.dtype.type(1.0 / X.shape[0])
        return grad
        # END SOLUTION


class SoftmaxModel(LinearModel):
    """Softmax regression: yhat = softmax(X w), w (785, 10); the class is the argmax."""

    def __init__(self, l2_reg_lambda: float = 0.0, dtype=np.float64, num_inputs: int = NUM_INPUTS,
                 num_classes: int = 10):
        self.num_outputs = num_classes
        super().__init__(l2_reg_lambda, dtype, num_inputs)

    def activation(self, logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return softmax(logits, out=out)

    def loss_gradient(self, X: np.ndarray, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The gradient (D, K) of the mean cross-entropy: X (N, D), outputs and one-hot targets (N, K)."""
        # BEGIN SOLUTION Task 3a: return the gradient (D, K) of the cross-entropy averaged over the N examples (Task 1b)
        grad = X.T @ (outputs - targets)
        grad *= self.dtype.type(1.0 / X.shape[0])
        return grad
        # END SOLUTION


def accuracy(targets: np.ndarray, outputs: np.ndarray) -> float:
    """Fraction in [0, 1] of outputs (N, K) that predict their target: binary (N, 1) (output >= 0.5 is class 1),
    one-hot (N, K) or labels (N,) (the argmax; ties go to the first class, as numpy's argmax)."""
    targets = np.asarray(targets)
    if outputs.shape[1] == 1:
        # BEGIN SOLUTION Task 2c: the fraction of the N examples whose prediction is their target (class 1 where the
        # output is at least 0.5)
        return np.count_nonzero((outputs[:, 0] >= 0.5) == (targets.reshape(len(outputs), -1)[:, 0] == 1)) / len(outputs)
        # END SOLUTION
    # BEGIN SOLUTION Task 3c: the fraction of the N examples whose prediction, the class of the largest output (the
    # first, in a tie), is their target: one-hot (N, K) or labels (N,)
    predicted = outputs.argmax(axis=1)
    if targets.shape == outputs.shape:  # one-hot: right where the predicted class's target is the row's 1
        if np.count_nonzero(targets) != len(targets):
            raise ValueError("one-hot targets must have exactly one 1 per row and zeros elsewhere")
        return np.count_nonzero(targets[np.arange(len(targets)), predicted] == 1) / len(targets)
    return np.count_nonzero(predicted == check_labels(targets, outputs.shape[1])) / len(outputs)
    # END SOLUTION


def calculate_accuracy(X: np.ndarray, targets: np.ndarray, model: LinearModel) -> float:
    """Accuracy in [0, 1] of `model` on X (N, 785) against binary (N, 1), one-hot (N, K) or label targets."""
    return accuracy(targets, model.forward(X))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K, K): row = true class, column = predicted class; labels and predictions (N,) in 0..K-1."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (check_labels(labels, num_classes), check_labels(predictions, num_classes)), 1)
    return counts


def confident_mistakes(probs: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` wrong predictions made with the highest probability, most confident first.

    probs (N, K) with labels (N,), or binary probs (N, 1) of class 1 with labels (N,) in {0, 1}.
    """
    if probs.shape[1] == 1:
        probs = np.hstack([1 - probs, probs])
    predictions = probs.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probs[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def plot_loss(loss_dict: dict, label: str | None = None, npoints_to_average: int = 1, plot_variance: bool = True):
    """The course's plot: the values of {global step: value} against the step, on matplotlib's current axes; with
    `npoints_to_average` > 1 and `plot_variance`, the mean of each `npoints_to_average` points and a band of
    +-1 standard deviation."""
    import matplotlib.pyplot as plt  # 1 s to import, and only for plots: the rest of this module is numpy alone

    steps, values = list(loss_dict.keys()), list(loss_dict.values())
    if npoints_to_average == 1 or not plot_variance:
        plt.plot(steps, values, label=label)
        return
    num_points = len(values) // npoints_to_average
    chunks = np.asarray(values[:num_points * npoints_to_average], dtype=np.float64).reshape(num_points, -1)
    middle = [steps[i * npoints_to_average + npoints_to_average // 2] for i in range(num_points)]
    mean, std = chunks.mean(axis=1), chunks.std(axis=1)
    plt.plot(middle, mean, label=f"{label} mean over {npoints_to_average} steps")
    plt.fill_between(middle, mean - std, mean + std, alpha=0.2,
                     label=f"{label} variance over {npoints_to_average} steps")


# ---------------------------------------------------------------- gradient check


GRADIENT_CHECK_EPSILON = 1e-3  # the step of the centred differences; the tolerance is its square


class GradientCheckError(AssertionError):
    """The analytic gradient disagrees with centred differences beyond the tolerance."""


def numerical_gradient(f: Callable[[], float], w: np.ndarray,
                       epsilon: float = GRADIENT_CHECK_EPSILON) -> np.ndarray:
    """Centred differences (f(w + eps) - f(w - eps)) / (2 eps) for every entry of w, changed in place and restored."""
    grad = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        original = w[idx]
        w[idx] = original + epsilon
        plus = f()
        w[idx] = original - epsilon
        minus = f()
        w[idx] = original
        grad[idx] = (plus - minus) / (2 * epsilon)
    return grad


def gradient_check(model: LinearModel, X: np.ndarray, targets: np.ndarray,
                   epsilon: float = GRADIENT_CHECK_EPSILON) -> float:
    """Largest |analytic - numeric| over w (float64 only), as the course's gradient_approximation_test: `backward`'s
    gradient against centred differences of cross_entropy_loss(targets, model.forward(X)), plus lambda/2 sum w^2
    where the model has an L2 lambda > 0. GradientCheckError above epsilon**2, naming the functions involved."""
    if model.w.dtype != np.float64 or X.dtype != np.float64:
        raise ValueError(f"gradient_check needs float64 weights and X, received {model.w.dtype} and {X.dtype}")
    lam = getattr(model, "l2_reg_lambda", 0.0)

    def objective() -> float:
        penalty = 0.5 * lam * float(np.sum(model.w * model.w)) if lam else 0.0
        return cross_entropy_loss(targets, model.forward(X)) + penalty

    numeric = numerical_gradient(objective, model.w, epsilon)
    model.backward(X, model.forward(X), targets)
    difference = np.abs(model.grad - numeric)
    worst = float(np.max(difference))
    if not worst <= epsilon**2:  # NaN too
        idx = np.unravel_index(np.argmax(np.nan_to_num(difference, nan=np.inf)), numeric.shape)
        raise GradientCheckError(
            f"backward's gradient and centred differences of cross_entropy_loss(targets, forward(X))"
            f"{' + lambda/2 sum w^2' if lam else ''} differ by {worst:.1e} at w{list(map(int, idx))} (analytic "
            f"{model.grad[idx]:.6e}, numeric {numeric[idx]:.6e}), above the tolerance epsilon^2 = {epsilon**2:.1e}: "
            "one of cross_entropy_loss, forward and backward is wrong"
        )
    return worst
