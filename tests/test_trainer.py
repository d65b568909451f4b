"""The training loop: cadence, history, early stopping, shuffling, determinism, errors."""

import json
import re

import numpy as np
import pytest

import utils
from mnist import synthetic_mnist
from trainer import BaseTrainer, TrainingDivergedError, should_early_stop, train
from utils import BinaryModel, SoftmaxModel, one_hot_encode, pre_process_images

SETTINGS = dict(learning_rate=0.05, batch_size=32, num_epochs=3)


@pytest.fixture(scope="module")
def digits():
    """Synthetic MNIST-shaped data: 640 training images (20 steps of 32), 200 validation images."""
    X_train, Y_train, X_val, Y_val = synthetic_mnist(num_train=640, num_test=200, seed=3)
    return pre_process_images(X_train), Y_train, pre_process_images(X_val), Y_val


@pytest.fixture(scope="module")
def noisy(digits):
    """The digits with 30% of the training labels drawn at random: the validation loss turns upward after a few
    dozen checks at a small learning rate, and early stopping (patience 5) ends the run there."""
    X_train, Y_train, X_val, Y_val = digits
    rng = np.random.default_rng(1)
    labels = Y_train.copy()
    flipped = rng.choice(len(labels), len(labels) * 3 // 10, replace=False)
    labels[flipped] = rng.integers(0, 10, len(flipped))
    return X_train, labels, X_val, Y_val


NOISY = dict(SETTINGS, learning_rate=0.002, num_epochs=50, shuffle=True, early_stopping_patience=5)


@pytest.fixture(scope="module")
def binary(digits):
    X_train, Y_train, X_val, Y_val = digits
    return X_train, (Y_train < 5).astype(float)[:, None], X_val, (Y_val < 5).astype(float)[:, None]


# ---------------------------------------------------------------- the course's early stopping rule


def decisions(losses, num_steps=10):
    """should_early_stop after each check of `losses` (one a step)."""
    seen, out = {}, []
    for step, loss in enumerate(losses):
        seen[step] = loss
        out.append(should_early_stop(seen, num_steps))
    return out


def test_the_course_rule_stops_when_the_oldest_of_the_last_checks_is_their_lowest():
    rising = [1.0 + 0.01 * i for i in range(12)]
    # the first check the best: with 10 losses (all of them) it is the first of them, and lowest: stop at once
    assert decisions(rising) == [False] * 9 + [True, True, True]
    assert decisions([5, 6, 6, 4, 7, 7, 7], num_steps=3) == [False, False, True, False, False, False, True]
    assert decisions([3, 2, 1, 0, -1], num_steps=2) == [False] * 5  # always improving
    assert decisions([1, 1, 1], num_steps=2) == [False, True, True]  # an equal loss is no improvement
    assert not should_early_stop({}, 10)


def test_the_rule_is_the_course_solutions_in_every_case():
    """Against the course solution's own rule (its trainer.py, 2022), written again here: 2,000 random histories."""
    def course(validation_loss, num_steps=10):
        losses = list(validation_loss.values())
        relevant = losses[-(num_steps + 1):]
        if len(relevant) < num_steps:
            return None
        return min(relevant) == relevant[0]

    rng = np.random.default_rng(0)
    for _ in range(2000):
        n, k = int(rng.integers(1, 30)), int(rng.integers(1, 12))
        losses = dict(enumerate(rng.integers(0, 5, n).astype(float)))  # small integers: ties often
        assert should_early_stop(losses, k) == bool(course(losses, k))


# ---------------------------------------------------------------- the loop


def test_history_follows_the_course_cadence(digits):
    result = train(SoftmaxModel(), *digits, **SETTINGS)
    h = result.history
    assert result.steps_per_epoch == 20 and result.val_every == 4
    assert len(h["train_loss"]) == 60 == result.num_steps
    assert h["check_steps"] == list(range(0, 60, 4))
    for key in ("val_loss", "val_accuracy", "train_accuracy", "train_set_loss"):
        assert len(h[key]) == 15
    assert result.stop_step == 59 and result.stop_epoch == 2 and not result.stopped_early
    assert h["train_loss"][0] == pytest.approx(np.log(10), abs=1e-12)  # zero weights, before the first update
    json.dumps(result.to_dict())  # plain data


def test_training_learns_both_tasks(digits, binary):
    softmax = train(SoftmaxModel(), *digits, **SETTINGS)
    assert softmax.final["val_accuracy"] > 0.9 and softmax.final["val_loss"] < softmax.history["val_loss"][0]
    logistic = train(BinaryModel(), *binary, **SETTINGS)
    assert logistic.final["val_accuracy"] > 0.9


def test_labels_and_one_hot_targets_train_identically(digits):
    X_train, Y_train, X_val, Y_val = digits
    a = train(SoftmaxModel(), X_train, Y_train, X_val, Y_val, **SETTINGS)
    b = train(SoftmaxModel(), X_train, one_hot_encode(Y_train, 10), X_val, one_hot_encode(Y_val, 10), **SETTINGS)
    assert a.history == b.history


def test_same_seed_same_history_bit_for_bit(digits):
    runs = [train(SoftmaxModel(0.01), *digits, **SETTINGS, shuffle=True, rng=np.random.default_rng(seed))
            for seed in (5, 5, 6)]
    assert json.dumps(runs[0].to_dict()) == json.dumps(runs[1].to_dict())
    assert runs[0].history["train_loss"] != runs[2].history["train_loss"]


def test_shuffling_changes_the_batches_but_not_the_first_loss(digits):
    plain = train(SoftmaxModel(), *digits, **SETTINGS)
    shuffled = train(SoftmaxModel(), *digits, **SETTINGS, shuffle=True, rng=np.random.default_rng(0))
    assert plain.history["train_loss"][0] == shuffled.history["train_loss"][0]  # zero weights: log 10 on any batch
    assert plain.history["train_loss"][1:] != shuffled.history["train_loss"][1:]


def test_float32_training_tracks_float64(digits):
    X_train, Y_train, X_val, Y_val = digits
    r64 = train(SoftmaxModel(), *digits, **SETTINGS)
    m32 = SoftmaxModel(dtype=np.float32)
    r32 = train(m32, X_train.astype(np.float32), Y_train, X_val.astype(np.float32), Y_val, **SETTINGS)
    assert m32.w.dtype == np.float32
    np.testing.assert_allclose(r32.history["val_loss"], r64.history["val_loss"], rtol=1e-4)


def test_early_stopping_in_the_loop(digits):
    # A large learning rate makes the validation loss bounce; patience 2 stops early.
    settings = dict(SETTINGS, learning_rate=5.0, num_epochs=50)
    result = train(SoftmaxModel(), *digits, **settings, early_stopping_patience=2)
    h = result.history
    assert result.stopped_early and result.num_steps < 50 * 20
    assert h["check_steps"][-1] == result.stop_step and result.stop_epoch == result.stop_step // 20
    assert len(h["train_loss"]) == result.num_steps  # no loss of a step after the check that stopped it
    best = int(np.argmin(h["val_loss"]))
    assert h["check_steps"][best] == result.best_step and len(h["check_steps"]) - 1 - best == 2


@pytest.mark.parametrize(("learning_rate", "what"), [(1e30, "became (nan|inf)|reached|stayed"),
                                                     (100.0, "reached|stayed")])
def test_divergence_is_a_clear_error(digits, learning_rate, what):
    X_train, Y_train, X_val, Y_val = digits
    noise = np.random.default_rng(0).permutation(Y_train)  # labels that cannot be learned: the loss has no floor
    with pytest.raises(TrainingDivergedError, match=rf"diverged: the \w+ loss ({what}).* at step \d+ \(epoch \d+\) "
                                                   rf"with learning_rate={re.escape(str(learning_rate))}; "
                                                   "try a smaller learning rate"):
        train(SoftmaxModel(dtype=np.float32), X_train.astype(np.float32), noise, X_val.astype(np.float32), Y_val,
              learning_rate=learning_rate, batch_size=32, num_epochs=50)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (dict(learning_rate=0), r"learning_rate must be a finite number > 0, received 0"),
        (dict(learning_rate=float("nan")), r"learning_rate .* received nan"),
        (dict(batch_size=0), r"batch_size must be an integer in \[1, 640\].*received 0"),
        (dict(batch_size=641), r"received 641"),
        (dict(batch_size=32.0), r"received 32.0"),
        (dict(num_epochs=0), r"num_epochs must be an integer >= 1, received 0"),
        (dict(early_stopping_patience=0), r"early_stopping_patience must be an integer >= 1 .* received 0"),
        (dict(shuffle=True), r"shuffle=True needs rng, a numpy.random.Generator \(or a RandomState .*\); received"),
    ],
)
def test_hyperparameters_are_checked_up_front(digits, override, match):
    with pytest.raises(ValueError, match=match):
        train(SoftmaxModel(), *digits, **{**SETTINGS, **override})


def test_data_errors_name_what_was_received(digits):
    X_train, Y_train, X_val, Y_val = digits
    with pytest.raises(ValueError, match=r"X_train must have shape \(N, 785\), received \(640, 784\)"):
        train(SoftmaxModel(), X_train[:, :784], Y_train, X_val, Y_val, **SETTINGS)
    bad = X_val.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="X_val must be finite"):
        train(SoftmaxModel(), X_train, Y_train, bad, Y_val, **SETTINGS)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), received values in \[3, 12\]"):
        train(SoftmaxModel(), X_train, Y_train + 3, X_val, Y_val, **SETTINGS)
    with pytest.raises(ValueError, match=r"X_train has 640 rows but Y_train has 639 labels"):
        train(SoftmaxModel(), X_train, Y_train[:-1], X_val, Y_val, **SETTINGS)
    with pytest.raises(ValueError, match=r"Y_train must have shape \(640, 1\) for the binary model"):
        train(BinaryModel(), X_train, np.zeros((640, 2)), X_val, (Y_val < 5)[:, None], **SETTINGS)


def test_training_does_not_modify_its_inputs(digits):
    copies = [a.copy() for a in digits]
    train(SoftmaxModel(), *digits, **SETTINGS, shuffle=True, rng=np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(digits, copies))


# ---------------------------------------------------------------- the fast loop computes what the plain one does


def test_matches_the_course_style_reference(digits, binary):
    """bench/reference.py: float64, one-hot, np.exp of raw scores, a fresh forward pass per quantity."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from reference import train_reference

    for make_model, data, shuffle in ((SoftmaxModel, digits, True), (BinaryModel, binary, False)):
        settings = dict(SETTINGS, shuffle=shuffle)
        result = train(make_model(), *data, **settings, rng=np.random.default_rng(11))
        _, train_history, val_history = train_reference(*data, **settings, rng=np.random.default_rng(11))
        assert list(val_history["loss"]) == result.history["check_steps"]
        np.testing.assert_allclose(result.history["train_loss"], list(train_history["loss"].values()), rtol=1e-9)
        np.testing.assert_allclose(result.history["val_loss"], list(val_history["loss"].values()), rtol=1e-9)
        assert result.history["val_accuracy"] == list(val_history["accuracy"].values())
        assert result.history["train_accuracy"] == list(train_history["accuracy"].values())


def test_history_does_not_depend_on_check_workers_or_blocks(digits, monkeypatch):
    from support import engine

    runs = []
    for workers, block_rows in ((1, 7500), (2, 7500), (2, 64), (3, 100)):
        monkeypatch.setattr(engine, "CHECK_WORKERS", workers)
        monkeypatch.setattr(engine, "CHECK_BLOCK_ROWS", block_rows)
        runs.append(train(SoftmaxModel(0.01, dtype=np.float32), *(a.astype(np.float32) if a.ndim == 2 else a
                                                                   for a in digits), **SETTINGS))
    assert runs[0].history == runs[1].history  # the same blocks on 1 or 2 workers: bit for bit
    for other in runs[2:]:  # other blocks: OpenBLAS may take another kernel path for a small block
        assert other.history["val_accuracy"] == runs[0].history["val_accuracy"]
        np.testing.assert_allclose(other.history["val_loss"], runs[0].history["val_loss"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gather_batches", [1, 3, 20, 64])
def test_shuffled_batches_are_what_the_course_loader_yields(gather_batches, monkeypatch):
    """The engine's batches, gathered ahead in pieces, are utils.batch_loader's, epoch after epoch, in the order the
    same generator draws (RandomState as the course's, a Generator, or numpy's global generator)."""
    from support import engine

    monkeypatch.setattr(engine, "GATHER_BATCHES", gather_batches)
    data = np.random.default_rng(5)
    X, Y = data.standard_normal((83, 785)), data.integers(0, 10, 83)  # 83 // 8 = 10 steps, 3 rows left out
    for make_rng in (lambda: np.random.RandomState(7), lambda: np.random.default_rng(7), lambda: None):
        trainers = [BaseTrainer(SoftmaxModel(), 0.1, 8, True, X, Y, X, Y, rng=make_rng(), engine=e)
                    for e in ("fast", "plain")]
        np.random.seed(7)  # noqa: NPY002 (the global generator's case, as the course's task scripts seed it)
        with engine.FastEngine(trainers[0]) as fast:
            got = [(Xb.copy(), Yb.copy()) for epoch in range(3) for Xb, Yb in fast.batches(epoch)]
        np.random.seed(7)  # noqa: NPY002
        expected = [(Xb, Yb) for _ in range(3) for Xb, Yb in utils.batch_loader(X, Y, 8, shuffle=True,
                                                                               rng=trainers[1].rng)]
        assert len(got) == len(expected) == 30
        assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(got, expected))


def test_early_stopping_gives_what_a_loop_waiting_for_every_check_gives(noisy, monkeypatch):
    """Checks come back several checks late; stopping rewinds to the checked step exactly: the same steps, stop and
    history as the plain engine (each check at once, as the course's loop), exact on steps, counts and accuracies.

    In float64: the engine's grouped GEMMs sum in another order than one check's, which moves float32 losses in
    their last bits, and where two checks' losses tie to the last bit (a softmax saturated by a large learning
    rate), such a difference could stop the runs at different checks.
    """
    from support import engine

    model = SoftmaxModel()
    plain = train(model, *noisy, **NOISY, rng=np.random.default_rng(2), engine="plain")
    assert plain.stopped_early and len(plain.history["check_steps"]) > 4 * 12  # several groups of checks
    for group in (1, 2, 6, 12):  # 1: each check is collected at the next one
        monkeypatch.setattr(engine, "CHECKS_PER_GEMM", group)
        other_model = SoftmaxModel()
        other = train(other_model, *noisy, **NOISY, rng=np.random.default_rng(2))
        assert (other.stop_step, other.stop_epoch, other.best_step) == (plain.stop_step, plain.stop_epoch,
                                                                        plain.best_step)
        assert other.history["train_loss"] == plain.history["train_loss"]  # the steps, to the last bit
        assert other.history["check_steps"] == plain.history["check_steps"]
        assert other.history["val_accuracy"] == plain.history["val_accuracy"]
        assert other.history["train_accuracy"] == plain.history["train_accuracy"]
        np.testing.assert_allclose(other.history["val_loss"], plain.history["val_loss"], rtol=1e-9)
        assert np.array_equal(other_model.w, model.w)


def test_the_engine_and_the_plain_loop_agree_on_every_run_of_the_tasks(digits, binary):
    """Without early stopping, with it, shuffled or not, both models: the same steps, stop and history."""
    for model, data in ((SoftmaxModel, digits), (BinaryModel, binary)):
        for extra in (dict, lambda: dict(shuffle=True, rng=np.random.RandomState(4)),  # a fresh generator per run
                      lambda: dict(early_stopping_patience=3)):
            runs = [train(model(), *data, **SETTINGS, **extra(), engine=e) for e in ("fast", "plain")]
            fast, plain = (r.to_dict() for r in runs)
            for key in ("num_steps", "stop_step", "stop_epoch", "stopped_early", "best_step"):
                assert fast[key] == plain[key], key
            for key in ("train_loss", "check_steps", "val_accuracy", "train_accuracy"):
                assert fast["history"][key] == plain["history"][key], key
            np.testing.assert_allclose(fast["history"]["val_loss"], plain["history"]["val_loss"], rtol=1e-12)


def test_the_callers_weight_array_receives_the_result(noisy):
    model = SoftmaxModel()
    w = model.w
    result = train(model, *noisy, **NOISY, rng=np.random.default_rng(2))
    assert result.stopped_early  # the engine rewound the weights: into the same array
    assert model.w is w and w.flags.c_contiguous and np.any(w != 0)
    assert model.grad is None  # zero_grad after every update, as the course's train_step


def evaluate(model, X, Y) -> tuple[float, float]:
    outputs = model.forward(X)
    return utils.cross_entropy_loss(Y, outputs), utils.accuracy(Y, outputs)


def test_final_is_what_the_weights_after_the_last_step_give_and_best_is_the_best_check(digits):
    """20 steps an epoch, a check every 4: the last step (59) is not a check step (56), so `final` is evaluated."""
    model = SoftmaxModel()
    result = train(model, *digits, **SETTINGS)
    assert result.stop_step == 59 and result.history["check_steps"][-1] == 56
    X_train, Y_train, X_val, Y_val = digits
    val_loss, val_acc = evaluate(model, X_val, Y_val)
    train_loss, train_acc = evaluate(model, X_train, Y_train)
    assert result.final == pytest.approx({"val_loss": val_loss, "val_accuracy": val_acc,
                                          "train_set_loss": train_loss, "train_accuracy": train_acc}, rel=1e-9)
    assert result.final["val_loss"] != result.history["val_loss"][-1]  # not the last check's
    best = result.history["check_steps"].index(result.best_step)
    assert result.best["val_loss"] == result.best_val_loss == min(result.history["val_loss"])
    assert result.best["val_accuracy"] == result.history["val_accuracy"][best]


def test_a_run_that_stops_early_ends_with_the_weights_of_its_last_check(digits):
    model = SoftmaxModel()
    result = train(model, *digits, **dict(SETTINGS, learning_rate=5.0, num_epochs=50), early_stopping_patience=2)
    assert result.stopped_early and result.stop_step == result.history["check_steps"][-1]
    assert result.final == {key: result.history[key][-1] for key in result.final}
    assert evaluate(model, *digits[2:])[0] == pytest.approx(result.final["val_loss"], rel=1e-9)


# ---------------------------------------------------------------- the code that teaches is the code that trains


def perturbed(monkeypatch, name: str):
    """Make one of the functions a student writes slightly wrong, where it is defined (utils)."""
    if name == "backward":
        original = utils.LinearModel.backward

        def backward(self, X, outputs, targets):
            original(self, X, outputs, targets)
            self.grad *= 1.01
        monkeypatch.setattr(utils.LinearModel, "backward", backward)
        return
    original = getattr(utils, name)
    if name == "cross_entropy_loss":
        monkeypatch.setattr(utils, name, lambda targets, outputs: original(targets, outputs) * 1.01)
    else:  # an activation: its outputs shifted a little
        monkeypatch.setattr(utils, name, lambda logits, out=None: original(logits * 1.01, out=out))


@pytest.mark.parametrize("name", ["softmax", "sigmoid", "cross_entropy_loss", "backward"])
def test_training_runs_the_functions_a_student_writes(name, digits, binary, monkeypatch):
    """Change softmax, sigmoid, the loss or backward in utils, and what `train` returns changes: training runs them
    (the engine's checks too: the validation losses change)."""
    model, data = (BinaryModel, binary) if name == "sigmoid" else (SoftmaxModel, digits)
    before = train(model(), *data, **SETTINGS).to_dict()
    perturbed(monkeypatch, name)
    after = train(model(), *data, **SETTINGS).to_dict()
    if name == "cross_entropy_loss":  # the loss is reported, not differentiated: the steps are the same
        assert after["history"]["train_loss"] != before["history"]["train_loss"]
        assert after["history"]["val_loss"] != before["history"]["val_loss"]
    else:
        assert after["history"]["val_loss"] != before["history"]["val_loss"]
        assert after["final"] != before["final"]


# ---------------------------------------------------------------- progress that tells the truth


def test_a_run_names_its_bar_and_early_stopping_closes_it_full(noisy, capsys):
    result = train(SoftmaxModel(), *noisy, **NOISY, rng=np.random.default_rng(2), progress="3, noisy")
    err = capsys.readouterr().err
    assert result.stopped_early and "3, noisy" in err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in last and f"{result.num_steps}/{result.num_steps}" in last, last  # finished, not cut short


def test_a_run_that_fails_leaves_its_bar_short(digits, capsys):
    X_train, Y_train, X_val, Y_val = digits
    noise = np.random.default_rng(0).permutation(Y_train)
    with pytest.raises(TrainingDivergedError):
        train(SoftmaxModel(dtype=np.float32), X_train.astype(np.float32), noise, X_val.astype(np.float32), Y_val,
              learning_rate=1e30, batch_size=32, num_epochs=50, progress="diverges")
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "diverges" in last and "100%" not in last and "/1000" in last, last


def test_without_a_label_there_is_no_bar(digits, capsys):
    train(SoftmaxModel(), *digits, **SETTINGS)
    assert capsys.readouterr().err == ""  # headless builds: nothing to leave in a PDF


def test_in_jupyter_a_bar_that_early_stopping_ends_is_drawn_full_and_green(noisy, monkeypatch):
    """The notebook widget takes a new length only when reset: setting tqdm's total left it 7% filled, yet green."""
    tqdm_notebook = pytest.importorskip("tqdm.notebook").tqdm
    bars = []

    def widget_bar(*args, **kwargs):
        bars.append(tqdm_notebook(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr("tqdm.auto.tqdm", widget_bar)
    result = train(SoftmaxModel(), *noisy, **NOISY, rng=np.random.default_rng(2), progress="3, noisy")
    _, drawn, _ = bars[0].container.children
    assert result.stopped_early and drawn.value == drawn.max == result.num_steps
    assert drawn.bar_style == "success"
