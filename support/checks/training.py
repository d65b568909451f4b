"""The checks of training (trainer.py's train_step and should_early_stop, the shuffled order of utils.batch_indices)
and the course's own gradient approximation test, which runs the student's loss, forward and backward together."""

from __future__ import annotations

import math

import numpy as np

from support.checks.core import (
    D,
    Problem,
    binary_targets,
    close,
    inputs_matrix,
    plain,
    returned,
    returned_array,
    weights,
)


def course_gradient_inputs(rng):
    return {"X": inputs_matrix(rng), "w": weights(rng, 1), "targets": binary_targets(rng)}


def probe_course_gradient(m, i):
    """The course's gradient_approximation_test (its 2a starter file): the student's loss, forward and backward,
    weight by weight."""
    utils = m["utils"]
    model, X, Y, epsilon = utils.BinaryModel(), i["X"].copy(), i["targets"].copy(), 1e-3
    model.w = i["w"].copy()
    worst = {"difference": 0.0}
    for j in range(model.w.shape[0]):
        original = model.w[j, 0]
        model.w[j, 0] = original + epsilon
        cost1 = utils.cross_entropy_loss(Y, model.forward(X))
        model.w[j, 0] = original - epsilon
        cost2 = utils.cross_entropy_loss(Y, model.forward(X))
        model.w[j, 0] = original
        approximation = (cost1 - cost2) / (2 * epsilon)
        model.backward(X, model.forward(X), Y)
        difference = abs(approximation - float(model.grad[j, 0]))
        if not difference <= worst["difference"]:  # NaN too
            worst = {"difference": difference, "index": j, "analytic": float(model.grad[j, 0]),
                     "numeric": float(approximation)}
        model.zero_grad()
    return {"worst": plain(worst)}


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
            "outputs": rng.uniform(0.1, 0.9, size=(4, 1)), "grad": rng.normal(size=(D, 1))}


STEP_LEARNING_RATE, STEP_LOSS = 0.7, 0.123456789


def probe_train_step(m, i):
    """train_step of a BaseTrainer around a stand-in model (fixed outputs and gradient) and a stand-in loss."""
    utils, trainer = m["utils"], m["trainer"]
    calls = {"forward": 0, "backward": 0, "loss": 0, "loss_outputs_are_forwards": True}

    class Model:
        def __init__(self):
            self.w, self.grad = i["w"].copy(), None

        def forward(self, X):
            calls["forward"] += 1
            return i["outputs"].copy()

        def backward(self, X, outputs, targets):
            calls["backward"] += 1
            self.grad = i["grad"].copy()

        def zero_grad(self):
            self.grad = None

    def loss(targets, outputs):
        calls["loss"] += 1
        calls["loss_outputs_are_forwards"] &= bool(np.array_equal(np.asarray(outputs), i["outputs"]))
        return STEP_LOSS

    modules = {id(module): module for module in (utils, trainer, getattr(trainer, "utils", None)) if module is not None}
    patched = [(module, module.cross_entropy_loss) for module in modules.values()
               if hasattr(module, "cross_entropy_loss")]
    for module, _ in patched:
        module.cross_entropy_loss = loss
    try:
        X, Y = i["X"].copy(), i["targets"].copy()
        model = Model()
        step = trainer.BaseTrainer(model, STEP_LEARNING_RATE, len(X), False, X, Y, X, Y)
        loss_returned = step.train_step(X, Y)
    finally:
        for module, original in patched:
            module.cross_entropy_loss = original
    return {"w": returned(model.w), "loss": returned(loss_returned), "calls": calls}


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


def probe_early_stop(m, i):
    rule = m["trainer"].should_early_stop
    return {"answers": [bool(rule({31 * n: loss for n, loss in enumerate(losses)}, num_steps))
                        for losses, num_steps, _ in EARLY_STOP_CASES]}


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
    return {"seed": np.array(int(rng.integers(0, 2**31)))}


def probe_shuffle(m, i):
    utils, seed = m["utils"], int(i["seed"])
    course = np.random.RandomState(seed)
    generator = np.random.default_rng(seed)
    return {kind: [[np.asarray(b).tolist() for b in utils.batch_indices(SHUFFLE_N, SHUFFLE_BATCH, shuffle=True,
                                                                         rng=rng)] for _ in range(SHUFFLE_EPOCHS)]
            for kind, rng in (("course", course), ("generator", generator))}


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
