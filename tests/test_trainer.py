"""The training loop: cadence, history, early stopping, shuffling, determinism, errors."""

import json
import re

import numpy as np
import pytest

import utils
from experiments import fit
from mnist import synthetic_mnist
from support import engine as engine_module
from support.engine import FastEngine
from trainer import TrainingDivergedError, should_early_stop, train
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

    bench = Path(__file__).resolve().parent.parent / "bench"
    if not (bench / "reference.py").exists():
        pytest.skip("bench/reference.py, a whole solution, is the instructor's: not in the student version")
    sys.path.insert(0, str(bench))
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


def fast_and_plain(make_model, data, seed=None, **settings):
    """The same run with the fast engine and with the plain one (the course's loop), each with a fresh
    RandomState(seed) if a seed is given: (fast, plain), each (TrainResult as plain data, final weights)."""
    out = []
    for engine in (FastEngine, None):
        model, rng = make_model(), (np.random.RandomState(seed) if seed is not None else None)
        out.append((train(model, *data, **settings, rng=rng, engine=engine).to_dict(), model.w.copy()))
    return out


@pytest.mark.parametrize(("workers", "ahead"), [(1, 1), (2, 6), (3, 2)])
def test_the_fast_engine_gives_the_plain_loops_history_bit_for_bit(noisy, monkeypatch, workers, ahead):
    """Checks run late on other threads, training runs ahead and rewinds when a late result says stop: the same
    steps, stop, history and weights as a loop that waits for every check, to the last bit, however many threads
    check and however far training may run ahead."""
    monkeypatch.setattr(engine_module, "CHECK_WORKERS", workers)
    monkeypatch.setattr(engine_module, "AHEAD", ahead)
    for dtype in (np.float64, np.float32):
        data = [a.astype(dtype) if a.ndim == 2 else a for a in noisy]
        (fast, w_fast), (plain, w_plain) = fast_and_plain(lambda dtype=dtype: SoftmaxModel(dtype=dtype), data,
                                                          seed=2, **NOISY)
        assert plain["stopped_early"] and len(plain["history"]["check_steps"]) > 20  # it stopped, late checks
        assert fast == plain and np.array_equal(w_fast, w_plain)


def test_the_fast_engine_and_the_plain_loop_agree_on_every_run_of_the_tasks(digits, binary):
    """Without early stopping, with it, shuffled or not, both models: the same results, to the last bit."""
    for model, data in ((SoftmaxModel, digits), (BinaryModel, binary)):
        for extra in ({}, dict(shuffle=True, seed=4), dict(early_stopping_patience=3)):
            (fast, w_fast), (plain, w_plain) = fast_and_plain(model, data, **SETTINGS, **extra)
            assert fast == plain and np.array_equal(w_fast, w_plain)


def test_the_callers_weight_array_receives_the_result(noisy):
    model = SoftmaxModel()
    w = model.w
    result = train(model, *noisy, **NOISY, rng=np.random.default_rng(2), engine=FastEngine)
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


def perturbed(monkeypatch, name: str) -> None:
    """Make one of the functions a student writes slightly wrong, where it is defined (utils)."""
    if name in ("forward", "backward"):
        original = getattr(utils.LinearModel, name)

        def wrong(self, X, *args, **kwargs):
            if name == "forward":  # the logits scaled by 1.5: what the activation gets is not X w
                return self.activation(1.5 * (X @ self.w))
            original(self, X, *args, **kwargs)
            self.grad *= 1.01
        monkeypatch.setattr(utils.LinearModel, name, wrong)
        return
    original = getattr(utils, name)
    wrong = {
        "cross_entropy_loss": lambda targets, outputs: original(targets, outputs) * 1.01,
        "one_hot_encode": lambda Y, num_classes, dtype=np.float64: original((np.asarray(Y) + 1) % num_classes,
                                                                           num_classes, dtype),
        "batch_loader": lambda X, Y, batch_size, shuffle=False, drop_last=True, rng=None: reversed(list(
            original(X, Y, batch_size, shuffle, drop_last, rng=rng))),
    }[name]
    monkeypatch.setattr(utils, name, wrong)


@pytest.mark.parametrize("name", ["forward", "batch_loader", "cross_entropy_loss", "backward", "one_hot_encode"])
def test_the_fast_engine_trains_through_the_functions_a_student_writes(name, digits, monkeypatch):
    """Change forward, batch_loader, the loss, backward or one_hot_encode in utils: what training returns changes,
    and the fast engine's run stays the plain loop's, to the last bit (its checks and batches are theirs too)."""
    settings = dict(SETTINGS, shuffle=True, early_stopping_patience=3)
    before = train(SoftmaxModel(), *digits, **settings, rng=np.random.RandomState(1), engine=FastEngine).to_dict()
    perturbed(monkeypatch, name)
    (fast, w_fast), (plain, w_plain) = fast_and_plain(SoftmaxModel, digits, seed=1, **settings)
    assert fast == plain and np.array_equal(w_fast, w_plain)
    assert fast["history"]["val_loss"] != before["history"]["val_loss"]


# ---------------------------------------------------------------- progress that tells the truth


def test_a_run_names_its_bar_and_early_stopping_closes_it_full(noisy, capsys):
    result = fit(SoftmaxModel(), *noisy, **NOISY, rng=np.random.default_rng(2), progress="3, noisy")
    err = capsys.readouterr().err
    assert result.stopped_early and "3, noisy" in err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in last and f"{result.num_steps}/{result.num_steps}" in last, last  # finished, not cut short


def test_a_run_that_fails_leaves_its_bar_short(digits, capsys):
    X_train, Y_train, X_val, Y_val = digits
    noise = np.random.default_rng(0).permutation(Y_train)
    with pytest.raises(TrainingDivergedError):
        fit(SoftmaxModel(dtype=np.float32), X_train.astype(np.float32), noise, X_val.astype(np.float32), Y_val,
            learning_rate=1e30, batch_size=32, num_epochs=50, progress="diverges")
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "diverges" in last and "100%" not in last and "/1000" in last, last


def test_without_a_label_there_is_no_bar(digits, capsys):
    fit(SoftmaxModel(), *digits, **SETTINGS)
    assert capsys.readouterr().err == ""  # headless builds: nothing to leave in a PDF


def test_in_jupyter_a_bar_that_early_stopping_ends_is_drawn_full_and_green(noisy, monkeypatch):
    """The notebook widget takes a new length only when reset: setting tqdm's total left it 7% filled, yet green."""
    tqdm_notebook = pytest.importorskip("tqdm.notebook").tqdm
    bars = []

    def widget_bar(*args, **kwargs):
        bars.append(tqdm_notebook(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr("tqdm.auto.tqdm", widget_bar)
    result = fit(SoftmaxModel(), *noisy, **NOISY, rng=np.random.default_rng(2), progress="3, noisy")
    _, drawn, _ = bars[0].container.children
    assert result.stopped_early and drawn.value == drawn.max == result.num_steps
    assert drawn.bar_style == "success"
