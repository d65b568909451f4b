"""Pure numpy: preprocessing, one-hot, batches, the two linear models, losses, accuracy, gradient check.

Shapes use fixed symbols: X (N, D) with D = 785 (784 pixels in [-1, 1] and a bias column of ones),
labels y (N,) in 0..K-1, one-hot Y (N, K), binary targets (N, 1) in {0, 1}, weights w (D, K).
Losses are computed from logits, so they stay finite for any finite weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

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
    out = np.empty((X.shape[0], NUM_INPUTS), dtype=dtype)
    np.divide(X, 127.5, out=out[:, :NUM_PIXELS], casting="unsafe")
    out[:, :NUM_PIXELS] -= 1
    out[:, NUM_PIXELS] = 1
    return out


def check_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels (N,) or (N, 1) of integers in [0, num_classes) -> (N,) intp; ValueError otherwise."""
    y = np.asarray(y)
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


def one_hot_encode(y: np.ndarray, num_classes: int, dtype=np.float64) -> np.ndarray:
    """Labels (N,) or (N, 1) in [0, num_classes) -> one-hot Y (N, num_classes)."""
    y = check_labels(y, num_classes)
    Y = np.zeros((y.shape[0], num_classes), dtype=dtype)
    Y[np.arange(y.shape[0]), y] = 1
    return Y


def batch_indices(num_examples: int, batch_size: int,
                  rng: np.random.Generator | np.random.RandomState | None = None) -> list[np.ndarray]:
    """One epoch's batches as index arrays (N // batch_size of them, the last partial batch dropped).

    Without `rng`, 0..N-1 in order. With a numpy Generator, a fresh permutation drawn from it. With a legacy
    RandomState, the course's order: `shuffle` of a fresh list 0..N-1 (its batch_loader does that with numpy's
    global generator, seeded at import; a RandomState(seed) gives the same draws without global state).
    """
    if not 1 <= batch_size <= num_examples:
        raise ValueError(f"batch_size must be in [1, {num_examples}] (the number of examples), received {batch_size}")
    if isinstance(rng, np.random.RandomState):
        indices = list(range(num_examples))
        rng.shuffle(indices)
        order = np.asarray(indices)
    elif rng is not None:
        order = rng.permutation(num_examples)
    else:
        order = np.arange(num_examples)
    num_batches = num_examples // batch_size
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(num_batches)]


def batch_loader(X: np.ndarray, Y: np.ndarray, batch_size: int,
                 rng: np.random.Generator | np.random.RandomState | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield one epoch of (X_batch (B, D), Y_batch (B, ...)); shuffled when `rng` is given; inputs untouched."""
    if len(X) != len(Y):
        raise ValueError(f"X and Y must have the same length, received {len(X)} and {len(Y)}")
    for idx in batch_indices(len(X), batch_size, rng):
        yield X[idx], Y[idx]


# ---------------------------------------------------------------- activations and losses


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function, no overflow for any |z|: 1 / (1 + exp(-z)) written with tanh."""
    return 0.5 * (1 + np.tanh(0.5 * logits))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Logits (N, K) -> probabilities (N, K), rows summing to 1; the row maximum is subtracted first."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    exp /= exp.sum(axis=1, keepdims=True)
    return exp


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """Logits (N, K) -> log(sum_k exp z_k) (N,), without overflow."""
    row_max = logits.max(axis=1)
    return row_max + np.log(np.exp(logits - row_max[:, None]).sum(axis=1))


def binary_cross_entropies(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-[y ln yhat + (1 - y) ln(1 - yhat)] per example (N, 1), yhat = sigmoid(z); logits and targets (N, 1)."""
    # -ln sigmoid(z) = softplus(-z) and -ln(1 - sigmoid(z)) = softplus(z); softplus(z) = logaddexp(0, z)
    return np.logaddexp(0, logits) - targets * logits


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean of `binary_cross_entropies`; logits and targets (N, 1)."""
    return float(np.mean(binary_cross_entropies(logits, targets)))


def softmax_cross_entropies(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-ln softmax(z)[y] per example (N,); logits (N, K), labels (N,) integers."""
    return log_sum_exp(logits) - logits[np.arange(len(labels)), labels]


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean of `softmax_cross_entropies`; logits (N, K), labels (N,) integers."""
    return float(np.mean(softmax_cross_entropies(logits, labels)))


def cross_entropy_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy from logits (N, 1) with binary targets (N, 1), or (N, K) with labels (N,) or one-hot."""
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), received {logits.shape}")
    if logits.shape[1] == 1:
        if targets.shape != logits.shape:
            raise ValueError(f"binary targets must have shape {logits.shape} like the logits, received {targets.shape}")
        return binary_cross_entropy(logits, targets)
    return softmax_cross_entropy(logits, as_labels(targets, logits.shape[1]))


def as_labels(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels (N,) or one-hot (N, K) -> labels (N,) intp."""
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] == num_classes and num_classes > 1:
        if not (np.all((targets == 0) | (targets == 1)) and np.all(targets.sum(axis=1) == 1)):
            raise ValueError("one-hot targets must have exactly one 1 per row and zeros elsewhere")
        return targets.argmax(axis=1)
    return check_labels(targets, num_classes)


# ---------------------------------------------------------------- models


class LinearModel:
    """A single linear layer w (D, K) starting at zero; subclasses pick the output activation."""

    num_outputs: int

    def __init__(self, l2_reg_lambda: float = 0.0, dtype=np.float64, num_inputs: int = NUM_INPUTS):
        if not (np.isfinite(l2_reg_lambda) and l2_reg_lambda >= 0):
            raise ValueError(f"l2_reg_lambda must be a finite number >= 0, received {l2_reg_lambda!r}")
        self.l2_reg_lambda = float(l2_reg_lambda)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, received {self.dtype}")
        self.w = np.zeros((num_inputs, self.num_outputs), dtype=self.dtype)
        self.grad: np.ndarray | None = None

    def logits(self, X: np.ndarray) -> np.ndarray:
        """X (N, D) -> logits z = X w (N, K)."""
        if X.ndim != 2 or X.shape[1] != self.w.shape[0]:
            raise ValueError(
                f"X must have shape (N, {self.w.shape[0]}), received {X.shape}; "
                "did you forget pre_process_images (the bias column)?"
            )
        return X @ self.w

    def forward(self, X: np.ndarray) -> np.ndarray:
        """X (N, D) -> probabilities (N, K)."""
        return self.activation(self.logits(X))

    def backward(self, X: np.ndarray, probs: np.ndarray, targets: np.ndarray) -> None:
        """Store in `grad` (D, K) the gradient of the mean cross-entropy plus lambda * R(w), R = 1/2 sum w^2."""
        if probs.shape != (X.shape[0], self.num_outputs):
            raise ValueError(f"probs must have shape {(X.shape[0], self.num_outputs)}, received {probs.shape}")
        self.grad = self.gradient(X, self.output_delta(probs, targets))

    def gradient(self, X: np.ndarray, delta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X (N, D) and delta = dC^n/dz^n (N, K) -> dJ/dw = X^T delta / N + lambda * w (D, K), into `out` if given.

        delta may carry extra zero columns (the trainer pads K to 16 for speed): they give zero columns.
        """
        grad = np.matmul(X.T, delta, out=out)
        grad *= self.dtype.type(1.0 / X.shape[0])
        if self.l2_reg_lambda:
            grad[:, :self.num_outputs] += self.dtype.type(self.l2_reg_lambda) * self.w
        return grad

    def loss(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy C (without the L2 term) from logits (N, K)."""
        return cross_entropy_loss(logits, targets)

    def example_losses(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The cross-entropy of each example (N,) from logits (N, K); `loss` is their mean."""
        raise NotImplementedError

    def penalty(self) -> float:
        """lambda * R(w), R(w) = 1/2 sum w^2."""
        return self.l2_reg_lambda * 0.5 * float(np.sum(self.w * self.w)) if self.l2_reg_lambda else 0.0

    def objective(self, X: np.ndarray, targets: np.ndarray) -> float:
        """J = C + lambda * R(w): what `backward` differentiates."""
        return self.loss(self.logits(X), targets) + self.penalty()

    def activation(self, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def output_delta(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """dC^n/dz^n = probs - targets (N, K), for either model; probs is left untouched."""
        return self._output_delta_inplace(probs.copy(), self._check_targets(targets, probs.shape))

    def _check_targets(self, targets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    def _output_delta_inplace(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """probs - targets, overwriting probs; targets already checked."""
        raise NotImplementedError

    def loss_and_delta(self, logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """(mean cross-entropy, dC^n/dz^n) from logits (N, K) in one pass, overwriting logits with the delta.

        For the trainer's hot loop: targets already checked; equal to `loss` and `output_delta(forward(X))`.
        """
        raise NotImplementedError

    def predict_from_logits(self, logits: np.ndarray) -> np.ndarray:
        """Logits (N, K) -> predicted labels (N,)."""
        raise NotImplementedError

    def count_correct(self, logits: np.ndarray, labels: np.ndarray) -> int:
        """How many rows of logits (N, K) predict their label (N,)."""
        return int(np.count_nonzero(self.predict_from_logits(logits) == labels))

    def evaluate(self, X: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy in [0, 1]) from a single forward pass over X."""
        logits = self.logits(X)
        return self.loss(logits, targets), accuracy_from_predictions(self.predict_from_logits(logits), targets)


class BinaryModel(LinearModel):
    """Logistic regression: yhat = sigmoid(X w), w (785, 1); class 1 when yhat >= 0.5."""

    num_outputs = 1

    def activation(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits)

    def _check_targets(self, targets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        if targets.shape != shape:
            raise ValueError(f"binary targets must have shape {shape}, received {targets.shape}")
        return targets

    def _output_delta_inplace(self, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        probs -= targets
        return probs

    def example_losses(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return binary_cross_entropies(logits, self._check_targets(targets, logits.shape))[:, 0]

    def loss_and_delta(self, logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        loss = binary_cross_entropy(logits, targets)
        logits *= 0.5  # sigmoid(z) = 0.5 * (1 + tanh(z / 2)), computed in place
        np.tanh(logits, out=logits)
        logits += 1
        logits *= 0.5
        return loss, self._output_delta_inplace(logits, targets)

    def predict_from_logits(self, logits: np.ndarray) -> np.ndarray:
        return (sigmoid(logits[:, 0]) >= 0.5).astype(np.intp)


class SoftmaxModel(LinearModel):
    """Softmax regression: yhat = softmax(X w), w (785, 10); the class is the argmax."""

    def __init__(self, l2_reg_lambda: float = 0.0, dtype=np.float64, num_inputs: int = NUM_INPUTS,
                 num_classes: int = 10):
        self.num_outputs = num_classes
        super().__init__(l2_reg_lambda, dtype, num_inputs)

    def activation(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)

    def _check_targets(self, targets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        labels = as_labels(targets, self.num_outputs)
        if labels.shape[0] != shape[0]:
            raise ValueError(f"{shape[0]} rows of probabilities but {labels.shape[0]} targets")
        return labels

    def _output_delta_inplace(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        probs[np.arange(len(labels)), labels] -= 1  # probs - one-hot, without the one-hot matrix
        return probs

    def example_losses(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return softmax_cross_entropies(logits, self._check_targets(targets, logits.shape))

    def loss_and_delta(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        # One exp serves both: loss = ln sum exp(z - max) - (z_y - max); probs = exp(z - max) / sum.
        logits -= logits.max(axis=1, keepdims=True)
        picked = logits[np.arange(len(labels)), labels]
        np.exp(logits, out=logits)
        sums = logits.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(sums[:, 0]) - picked))
        logits /= sums
        return loss, self._output_delta_inplace(logits, labels)

    def predict_from_logits(self, logits: np.ndarray) -> np.ndarray:
        return logits.argmax(axis=1)

    def count_correct(self, logits: np.ndarray, labels: np.ndarray) -> int:
        # The label's logit equals the row maximum; where several classes share the maximum, argmax takes the
        # first, so those (rare) rows are decided by argmax. Several times faster than argmax on every row.
        row_max = logits.max(axis=1)
        hit = logits[np.arange(len(labels)), labels] == row_max
        tied = np.count_nonzero(logits == row_max[:, None], axis=1) > 1
        if tied.any():
            hit[tied] = logits[tied].argmax(axis=1) == labels[tied]
        return int(np.count_nonzero(hit))


def accuracy_from_predictions(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Fraction in [0, 1] of predictions (N,) equal to the targets: labels (N,), binary (N, 1) or one-hot (N, K)."""
    targets = np.asarray(targets)
    if targets.ndim == 2:
        targets = targets[:, 0] if targets.shape[1] == 1 else targets.argmax(axis=1)
    return float(np.mean(predictions == targets))


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


def calculate_accuracy(X: np.ndarray, targets: np.ndarray, model: LinearModel) -> float:
    """Accuracy in [0, 1] of `model` on X (N, D): binary output >= 0.5 is class 1; multiclass argmax."""
    return accuracy_from_predictions(model.predict_from_logits(model.logits(X)), targets)


# ---------------------------------------------------------------- gradient check


GRADIENT_CHECK_EPSILON = 1e-3  # the step of the centred differences; the tolerance is its square
NUMERICAL_STACK_ELEMENTS = 2**20  # logits per stack of objective_numerical_gradient: 8 MB of float64


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


def objective_numerical_gradient(model: LinearModel, X: np.ndarray, targets: np.ndarray,
                                 epsilon: float = GRADIENT_CHECK_EPSILON) -> np.ndarray:
    """`numerical_gradient` of model.objective(X, targets) (D, K), every weight's pair of moves at once.

    Moving w[i, j] by +-eps moves only column j of the logits z = X w, by +-eps X[:, i]. So for each column and
    sign, the logits of all D moved weights form one stack (D, N, K), and the data term of J at each is the mean
    of the model's `example_losses` over its slice; the penalty term is model.penalty() at each moved weight, one
    at a time as `numerical_gradient` does. Equal to numerical_gradient(model.objective) to rounding
    (tests/test_utils.py), and about six times faster on the notebooks' 785 x 10 weights (0.2 s for 1.2 s).
    """
    w = model.w
    num_inputs, num_outputs = w.shape
    logits = model.logits(X)
    penalty_moves = numerical_gradient(model.penalty, w, epsilon) * (2 * epsilon)  # penalty(w+) - penalty(w-)
    chunk = max(1, NUMERICAL_STACK_ELEMENTS // (len(X) * num_outputs))  # moved weights per stack
    grad = np.empty_like(w)
    for first in range(0, num_inputs, chunk):
        rows = slice(first, min(first + chunk, num_inputs))
        count = rows.stop - first
        stacked_targets = np.concatenate([targets] * count)
        # the stack class-major in memory, (K, moved weights, N): the losses' reductions over K run fast
        moved = np.empty((num_outputs, count, len(X)))
        moved[...] = logits.T[:, None, :]
        stack = moved.reshape(num_outputs, -1).T  # (moved weights * N, K), a view
        for j in range(num_outputs):
            data = []
            for sign in (1, -1):
                moved[j] = logits[:, j] + sign * epsilon * X[:, rows].T
                losses = model.example_losses(stack, stacked_targets)
                data.append(losses.reshape(count, len(X)).mean(axis=1))
            moved[j] = logits[:, j]
            grad[rows, j] = (data[0] - data[1] + penalty_moves[rows, j]) / (2 * epsilon)
    return grad


def gradient_check(model: LinearModel, X: np.ndarray, targets: np.ndarray,
                   epsilon: float = GRADIENT_CHECK_EPSILON) -> float:
    """Largest |analytic - numeric| over w (float64 only); raises GradientCheckError above epsilon**2."""
    if model.dtype != np.float64 or X.dtype != np.float64:
        raise ValueError(f"gradient_check needs float64 weights and X, received {model.dtype} and {X.dtype}")
    numeric = objective_numerical_gradient(model, X, targets, epsilon)
    model.backward(X, model.forward(X), targets)
    worst = float(np.max(np.abs(model.grad - numeric)))
    if worst > epsilon**2:
        idx = np.unravel_index(np.argmax(np.abs(model.grad - numeric)), numeric.shape)
        raise GradientCheckError(
            f"analytic and numerical gradients differ by {worst:.3e} > {epsilon**2:.0e} at w{list(idx)}: "
            f"analytic {model.grad[idx]:.6e}, numeric {numeric[idx]:.6e}"
        )
    return worst
