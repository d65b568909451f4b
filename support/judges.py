"""The judges of the checks (support/checks.py lists them): each reads what a probe brought back from the student's
code (support/probes.py) and compares it with the assignment's definitions, naming the kind of mistake it looks like
in plain words; with the inputs each check draws from a seed."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from support.definitions import (
    D,
    K,
    N,
    Problem,
    binary_targets,
    close,
    inputs_matrix,
    mean_cross_entropy,
    near,
    numeric_gradient,
    one_hot_targets,
    returned_array,
    scale_of,
    sigmoid,
    softmax,
    weights,
)


def judge_pre_process(i, data):
    X = i["X"].astype(np.float64)
    got, problem = returned_array(data)
    if problem:
        return problem
    if got.shape == (N, 784):
        return Problem("no_bias", "returns 784 columns: append the bias input, a column of ones, as column 785")
    if got.shape != (N, D):
        return Problem("shape", f"returns shape {got.shape} for {N} images; ({N}, {D}) is expected")
    pixels = X / 127.5 - 1
    if close(got[:, :-1], pixels) and close(got[:, -1], np.ones(N)):
        return None
    if close(got[:, 0], np.ones(N)) and close(got[:, 1:], pixels):
        return Problem("bias_column", "the bias column is not last: the column of ones must come after the 784 "
                                      "pixels (the weights' last row is the bias)")
    for scaled, words in ((X / 255, "to [0, 1]"), (X, "not at all")):
        if close(got[:, :-1], scaled) or close(got[:, 1:], scaled):
            return Problem("range", f"the pixels are scaled {words}; the task asks for [-1, 1] (0 becomes -1, "
                                    "255 becomes 1)")
    if not close(got[:, -1], np.ones(N)) and not close(got[:, 0], np.ones(N)):
        return Problem("no_bias", "no column of ones: append the bias input as the last column")
    return Problem("values", f"the pixels are not mapped to [-1, 1] as x / 127.5 - 1: pixel 0 gives "
                             f"{got[0, 0]:.4g}, pixel 255 gives {got[0, 1]:.4g}")


def judge_course_pixels(i, data):
    got, problem = returned_array(data)
    if problem:
        return problem
    if not (got.max() <= 1.0 and -1 <= got.min() < 0):
        return Problem("range", f"the course's check: images in [-1, 1]; they are in [{got.min():.4g}, "
                                f"{got.max():.4g}]")
    if got.ndim != 2 or got.shape[1] != D:
        return Problem("shape", f"the course's check: {D} elements per image; the shape is {got.shape}")
    return None


def sigmoid_inputs(rng):
    return {"z": np.array([[-1000.0], [-30.0], [-1.0], [0.0], [rng.normal()], [30.0], [1000.0]])}


def judge_sigmoid(i, data):
    got, problem = returned_array(data, i["z"].shape)
    if problem:
        return problem
    expected = sigmoid(i["z"])
    if close(got, expected, 1e-9):
        return None
    if not np.all(np.isfinite(got)):
        return Problem("overflow", "gives NaN or infinity for large |z| (z = -1000 or 1000): the sigmoid is 0 or 1 "
                                   "there")
    worst = int(np.argmax(np.abs(got - expected)))
    return Problem("values", f"sigmoid({i['z'].flat[worst]:g}) gives {got.flat[worst]:.6g}; 1 / (1 + exp(-z)) is "
                             f"{expected.flat[worst]:.6g}")


def judge_forward(i, data):
    got, problem = returned_array(data)
    if problem:
        return problem
    logits = i["X"] @ i["w"]
    if got.shape == (N,):
        return Problem("shape", f"returns shape ({N},): keep the outputs ({N}, 1), one row per image")
    if got.shape != logits.shape:
        return Problem("shape", f"returns shape {got.shape}; ({N}, 1) is expected")
    if close(got, sigmoid(logits)):
        return None
    if close(got, logits):
        return Problem("activation", "returns the logits X w: apply the model's activation, the sigmoid")
    return Problem("values", "the outputs are not sigmoid(X w)")


def judge_course_forward(i, data):
    got, problem = returned_array(data)
    if problem:
        return problem
    if abs(float(got.mean()) - 0.5) > 1e-7:
        return Problem("values", f"the course's check: with all weights 0 the outputs must average 0.5 (the sigmoid "
                                 f"of 0); they average {float(got.mean()):.6g}")
    return None


def loss_inputs(outputs: int) -> Callable:
    def make(rng):
        targets = binary_targets(rng) if outputs == 1 else one_hot_targets(rng)
        probs = rng.uniform(0.05, 0.95, size=(N, 1)) if outputs == 1 else softmax(rng.normal(size=(N, K)))
        return {"targets": targets, "outputs": probs}
    return make


def judge_loss(i, data):
    got, problem = returned_array(data)
    if problem:
        return problem
    if got.shape != ():
        return Problem("shape", f"returns an array of shape {got.shape}, not one number: average over the batch")
    expected, value = float(mean_cross_entropy(i["targets"], i["outputs"])), float(got)
    if math.isclose(value, expected, rel_tol=1e-7):
        return None
    if math.isclose(value, N * expected, rel_tol=1e-7):
        return Problem("summed", f"the loss is summed instead of averaged: it is N = {N} times the mean; divide by "
                                 "the batch size")
    if math.isclose(value, -expected, rel_tol=1e-7):
        return Problem("sign", "the loss is negative: the cross-entropy has a minus sign in front of the sum")
    if i["outputs"].shape[1] > 1 and math.isclose(value, expected / K, rel_tol=1e-7):
        return Problem("averaged_classes", f"the loss is averaged over the {K} classes too: sum over the classes, "
                                           "average over the batch")
    if i["outputs"].shape[1] == 1:
        y, p = i["targets"], i["outputs"]
        if math.isclose(value, float(-(y * np.log(p)).mean()), rel_tol=1e-7):
            return Problem("term", "the term (1 - y) ln(1 - yhat) is missing")
    return Problem("values", f"gives {value:.6g}; the mean cross-entropy of these outputs is {expected:.6g}")


def judge_gradient(i, data):
    got, problem = returned_array(data, i["w"].shape)
    if problem:
        return problem
    expected = numeric_gradient(i["X"], i["targets"], i["w"])
    difference = np.abs(got - expected)
    if np.all(np.isfinite(got)) and difference.max() <= 1e-7 + 1e-5 * np.abs(expected).max():
        return None
    alpha = scale_of(got, expected)
    if alpha is not None:
        for value, kind, words in (
                (-1, "sign", "the sign of the gradient is flipped: it points uphill (outputs minus targets, not "
                             "targets minus outputs, or the minus sign in front)"),
                (N, "batch_size", f"the gradient is N = {N} times too large: divide by the batch size"),
                (1 / N, "batch_size", f"the gradient is N = {N} times too small: it is divided by the batch size "
                                      "twice"),
                (-N, "sign", f"the sign of the gradient is flipped, and it is N = {N} times too large (divide by the "
                             "batch size)")):
            if near(alpha, value):
                return Problem(kind, words)
        return Problem("scale", f"the gradient is {alpha:.4g} times what it should be")
    j, k = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(difference), difference, np.inf))), got.shape)
    return Problem("values", f"the gradient differs from centred differences of the mean cross-entropy: at w[{j}, "
                             f"{k}] it is {got[j, k]:.6g}, the differences give {expected[j, k]:.6g}")


def judge_one_hot(i, data):
    labels = i["labels"].astype(int)[:, 0]
    got, problem = returned_array(data.get("labels", {}))
    if problem:
        return problem
    if got.shape != (len(labels), K):
        return Problem("shape", f"returns shape {got.shape} for {len(labels)} labels; ({len(labels)}, {K}) is "
                                "expected")
    if not (np.all((got == 0) | (got == 1)) and np.all(got.sum(axis=1) == 1)):
        return Problem("not_one_hot", "each row must hold one 1 and zeros elsewhere")
    hot = got.argmax(axis=1)
    if np.array_equal(hot, labels):
        course, _ = returned_array(data.get("course", {}), (1, K))
        if course is None or course[0, 3] != 1 or course.sum() != 1:
            return Problem("course", "the course's check: one_hot_encode([[3]], 10) must be [0,0,0,1,0,0,0,0,0,0]")
        return None
    shifts = {int(s) for s in (hot - labels) % K}
    if len(shifts) == 1:
        shift = shifts.pop()
        shift = shift - K if shift > K // 2 else shift
        return Problem("one_hot_shift", f"the one-hot vector is shifted by {shift}: label y must set column y "
                                        "(counting from 0)")
    return Problem("values", f"label {labels[0]} sets column {hot[0]}")


def softmax_inputs(rng):
    """A row of ordinary logits, two of large ones (exp overflows without the maximum taken off), and zeros."""
    return {"z": np.vstack([rng.normal(size=K), np.linspace(0, 1000, K), -np.linspace(0, 1000, K), np.zeros(K)])}


def judge_softmax(i, data):
    got, problem = returned_array(data, i["z"].shape)
    if problem:
        return problem
    expected = softmax(i["z"])
    if close(got, expected, 1e-9):
        return None
    large = np.abs(i["z"]).max(axis=1) > 100
    if not np.all(np.isfinite(got[large])) and close(got[~large], expected[~large], 1e-9):
        return Problem("overflow", "softmax overflows for large logits (exp(1000) is infinity, and inf / inf is "
                                   "NaN): subtract each row's maximum before exp; the probabilities do not change")
    if np.all(np.isfinite(got)) and np.allclose(got.sum(axis=0), 1) and not np.allclose(got.sum(axis=1), 1):
        return Problem("axis", "the probabilities are normalised over the batch (each column sums to 1): each row "
                               "must sum to 1 (axis=1)")
    if np.all(np.isfinite(got)) and not np.allclose(got.sum(axis=1), 1):
        return Problem("normalise", "the rows do not sum to 1: divide each exp by its row's sum")
    return Problem("values", "the probabilities are not exp(z_k) / sum_k' exp(z_k') of each row")


def course_softmax_inputs(rng):
    """The course's check: softmax at zero weights, so of zero logits."""
    return {"z": np.zeros((N, K))}


def judge_course_softmax(i, data):
    got, problem = returned_array(data, (N, K))
    if problem:
        return problem
    if abs(float(got.mean()) - 1 / K) > 1e-7:
        return Problem("values", f"the course's check: with all weights 0 the outputs must average 1/10 (softmax of "
                                 f"zeros); they average {float(got.mean()):.6g}")
    return None


def l2_inputs(rng):
    X, w = inputs_matrix(rng), weights(rng, K)
    return {"X": X, "w": w, "targets": one_hot_targets(rng), "outputs": softmax(X @ w),
            "data_gradient": rng.normal(size=(D, K)), "lambda": 0.3}


def judge_l2(i, data):
    got, problem = returned_array(data, i["w"].shape)
    if problem:
        return problem
    lam, w, base = float(i["lambda"]), i["w"], i["data_gradient"]
    added = got - base
    if close(added, lam * w, 1e-9):
        return None
    if close(got, lam * w, 1e-9):
        return Problem("l2_replaces", "backward replaces the gradient with the L2 term: add lambda * w to it")
    beta = scale_of(added, lam * w)
    if beta is None and np.allclose(added, 0, atol=1e-12):
        beta = 0.0
    if beta is not None:
        for value, kind, words in (
                (0, "l2_missing", "the L2 term is missing: add lambda * w, the gradient of lambda R(w) = "
                                  "lambda/2 sum w^2, to the gradient"),
                (2, "l2_twice", "the L2 term is 2 lambda w: the gradient of lambda/2 sum w^2 is lambda w"),
                (0.5, "l2_half", "the L2 term is lambda w / 2: the gradient of lambda/2 sum w^2 is lambda w"),
                (-1, "l2_sign", "the L2 term has the wrong sign: add lambda * w"),
                (1 / N, "l2_batch", "the L2 term is divided by the batch size: it is lambda w, not averaged")):
            if near(beta, value):
                return Problem(kind, words)
        return Problem("l2_scale", f"the L2 term is {beta:.4g} lambda w; it should be lambda w")
    if close(added, lam * np.sign(w), 1e-9):
        return Problem("l2_l1", "the L2 term is lambda sign(w), the gradient of an L1 penalty: it is lambda w")
    return Problem("values", "what backward adds to the gradient is not lambda * w")


def accuracy_inputs(outputs: int) -> Callable:
    def make(rng):
        if outputs == 1:
            probs = rng.uniform(0, 1, size=(8, 1))
            probs[:2, 0] = 0.5
            return {"targets": np.array([[1], [0], [1], [1], [0], [0], [1], [0]], dtype=float), "outputs": probs}
        labels = rng.integers(0, K, size=8)
        return {"targets": np.eye(K)[labels], "outputs": softmax(rng.normal(size=(8, K)))}
    return make


def judge_accuracy(i, data):
    got, problem = returned_array(data)
    if problem:
        return problem
    y, p = i["targets"], i["outputs"]
    if p.shape[1] == 1:
        right = (p[:, 0] >= 0.5) == (y[:, 0] == 1)
        strict = (p[:, 0] > 0.5) == (y[:, 0] == 1)
    else:
        right = strict = p.argmax(axis=1) == y.argmax(axis=1)
    expected = right.mean()
    if got.shape != ():
        return Problem("shape", f"returns an array of shape {got.shape}, not one number")
    value = float(got)
    if math.isclose(value, expected):
        return None
    if math.isclose(value, 1 - expected):
        return Problem("complement", "gives the fraction of wrong predictions: count the right ones")
    if math.isclose(value, strict.mean()):
        return Problem("threshold", "an output of exactly 0.5 must count as class 1 (output >= 0.5)")
    if math.isclose(value, right.sum()):
        return Problem("count", "gives the number right, not the fraction: divide by the number of examples")
    return Problem("values", f"gives {value:.4g}; a direct count of the right predictions gives {expected:.4g}")


def course_gradient_inputs(rng):
    return {"X": inputs_matrix(rng), "w": weights(rng, 1), "targets": binary_targets(rng)}


def judge_course_gradient(i, data):
    worst = data.get("worst", {})
    difference = worst.get("difference")
    if isinstance(difference, (int, float)) and difference <= 1e-3**2:
        return None
    return Problem("gradient_check", f"the course's gradient approximation test fails at w[{worst.get('index')}, 0]: "
                                     f"backward gives {worst.get('analytic', math.nan):.6g}, centred differences of "
                                     f"your loss give {worst.get('numeric', math.nan):.6g}; your "
                                     "cross_entropy_loss, forward or backward is wrong (the checks above say which)")


def step_inputs(rng):
    return {"X": inputs_matrix(rng)[:4], "targets": binary_targets(rng)[:4], "w": weights(rng, 1),
            "outputs": rng.uniform(0.1, 0.9, size=(4, 1)), "grad": rng.normal(size=(D, 1)),
            "learning_rate": STEP_LEARNING_RATE, "loss": STEP_LOSS}


STEP_LEARNING_RATE, STEP_LOSS = 0.7, 0.123456789  # the stand-in loss returns STEP_LOSS


def judge_train_step(i, data):
    w, problem = returned_array(data.get("w", {}), i["w"].shape)
    if problem:
        return Problem(problem.kind, "self.model.w: " + problem.message)
    calls = data.get("calls", {})
    if calls.get("forward", 0) < 1 or calls.get("backward", 0) < 1:
        return Problem("calls", "train_step must call the model's forward and backward")
    step = w - i["w"]
    for factor, kind, words in ((-STEP_LEARNING_RATE, None, ""),
                                (STEP_LEARNING_RATE, "step_sign", "the step goes uphill: subtract learning_rate * grad "
                                                                  "from the weights"),
                                (-1, "step_rate", "the step ignores the learning rate: w -= learning_rate * grad"),
                                (0, "no_step", "the weights do not change: update self.model.w")):
        if close(step, factor * i["grad"], 1e-9):
            if kind:
                return Problem(kind, words)
            break
    else:
        return Problem("step", "the weights do not move by -learning_rate * grad")
    loss, _ = returned_array(data.get("loss", {}))
    if loss is None or loss.shape != () or not math.isclose(float(loss), STEP_LOSS):
        return Problem("loss", "train_step must return the batch's loss, utils.cross_entropy_loss(Y_batch, outputs)")
    if not calls.get("loss_outputs_are_forwards", False):
        return Problem("loss", "the loss returned must be that of the outputs forward gave for the batch")
    return None


# The course's rule on test vectors: stop when the first of the last num_steps + 1 validation losses is the lowest,
# once there are num_steps of them
EARLY_STOP_CASES = [([], 3, False), ([1.0, 2.0], 3, False), ([1.0, 2.0, 3.0], 3, True), ([3.0, 2.0, 1.0], 3, False),
                    ([5.0, 1.0, 2.0, 3.0, 4.0], 3, True), ([5.0, 1.0, 2.0, 3.0], 3, False),
                    ([5.0, 1.0, 2.0, 0.5, 3.0], 3, False), ([2.0, 1.0, 1.0, 1.0, 1.0], 3, True),
                    ([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.6], 10, False),
                    ([9.0, 0.5, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9], 10, True)]


def early_stop_inputs(rng):
    return {"cases": [[losses, num_steps] for losses, num_steps, _ in EARLY_STOP_CASES]}


def judge_early_stop(i, data):
    answers = data.get("answers", [])
    for (losses, num_steps, expected), answer in zip(EARLY_STOP_CASES, answers):
        if answer != expected:
            return Problem("rule", f"with the validation losses {losses} and num_steps={num_steps} it says "
                                   f"{'stop' if answer else 'go on'}; the course's rule says "
                                   f"{'stop' if expected else 'go on'} (stop when the first of the last num_steps "
                                   "+ 1 losses is the lowest, once there are num_steps of them)")
    return None if len(answers) == len(EARLY_STOP_CASES) else Problem("values", "not every case was answered")


SHUFFLE_N, SHUFFLE_BATCH, SHUFFLE_EPOCHS = 12, 4, 3


def shuffle_inputs(rng):
    return {"seed": int(rng.integers(0, 2**31)), "n": SHUFFLE_N, "batch_size": SHUFFLE_BATCH, "epochs": SHUFFLE_EPOCHS}


def judge_shuffle(i, data):
    seed = int(i["seed"])
    for kind in ("course", "generator"):
        epochs = data.get(kind)
        if not isinstance(epochs, list) or len(epochs) != SHUFFLE_EPOCHS:
            return Problem("values", "batch_indices did not give the batches of each epoch")
        orders = [sum(epoch, []) for epoch in epochs]
        if any(sorted(order) != list(range(SHUFFLE_N)) for order in orders):
            return Problem("permutation", f"an epoch's batches are not a permutation of 0..{SHUFFLE_N - 1}: each "
                                          "example exactly once")
        if orders[0] == list(range(SHUFFLE_N)) and orders[1] == orders[0]:
            return Problem("no_shuffle", "the order is not shuffled: draw a fresh order of the examples every epoch")
        if all(order == orders[0] for order in orders):
            return Problem("same_order", "every epoch has the same order: draw a fresh one each epoch (from rng), "
                                         "not once")
    course = np.random.RandomState(seed)  # the course's batch_loader: np.random.shuffle of the list of indices
    expected = []
    for _ in range(SHUFFLE_EPOCHS):
        indices = list(range(SHUFFLE_N))
        course.shuffle(indices)
        expected.append(indices)
    if [sum(epoch, []) for epoch in data["course"]] != expected:
        return Problem("course_order", "with a RandomState, the order is not the course's: shuffle the list 0..N-1 "
                                       "with rng.shuffle, as the course's batch_loader does with np.random.shuffle")
    return None
