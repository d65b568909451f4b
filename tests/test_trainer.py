"""The training loop: cadence, history, early stopping, shuffling, determinism, errors."""

import json
import re

import numpy as np
import pytest

from mnist import synthetic_mnist
from trainer import EarlyStopping, TrainingDivergedError, train
from utils import BinaryModel, SoftmaxModel, one_hot_encode, pre_process_images

SETTINGS = dict(learning_rate=0.05, batch_size=32, num_epochs=3)


@pytest.fixture(scope="module")
def digits():
    """Synthetic MNIST-shaped data: 640 training images (20 steps of 32), 200 validation images."""
    X_train, Y_train, X_val, Y_val = synthetic_mnist(num_train=640, num_test=200, seed=3)
    return pre_process_images(X_train), Y_train, pre_process_images(X_val), Y_val


@pytest.fixture(scope="module")
def binary(digits):
    X_train, Y_train, X_val, Y_val = digits
    return X_train, (Y_train < 5).astype(float)[:, None], X_val, (Y_val < 5).astype(float)[:, None]


# ---------------------------------------------------------------- early stopping rule


def test_early_stopping_stops_exactly_at_the_tenth_check_without_improvement():
    stopper = EarlyStopping(10)
    assert not stopper.update(1.0, 0)
    decisions = [stopper.update(1.0 + 0.01 * i, i + 1) for i in range(10)]
    assert decisions == [False] * 9 + [True]
    assert stopper.best_step == 0 and stopper.best_loss == 1.0


def test_an_improvement_resets_the_count():
    stopper = EarlyStopping(3)
    losses = [5, 6, 6, 4, 7, 7, 7]  # an equal loss is no improvement
    decisions = [stopper.update(loss, step) for step, loss in enumerate(losses)]
    assert decisions == [False, False, False, False, False, False, True]
    assert stopper.best_step == 3 and stopper.best_loss == 4


def test_no_patience_never_stops():
    stopper = EarlyStopping(None)
    assert not any(stopper.update(float(i), i) for i in range(1000))


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


def test_early_stopping_in_the_loop_and_restoring_the_best_weights(digits):
    # A large learning rate makes the validation loss bounce; patience 2 stops early.
    settings = dict(SETTINGS, learning_rate=5.0, num_epochs=50)
    result = train(SoftmaxModel(), *digits, **settings, early_stopping_patience=2)
    h = result.history
    assert result.stopped_early and result.num_steps < 50 * 20
    assert h["check_steps"][-1] == result.stop_step and result.stop_epoch == result.stop_step // 20
    best = int(np.argmin(h["val_loss"]))
    assert h["check_steps"][best] == result.best_step and len(h["check_steps"]) - 1 - best == 2

    model = SoftmaxModel()
    restored = train(model, *digits, **settings, early_stopping_patience=2, restore_best_weights=True)
    assert restored.restored_best
    X_val, Y_val = digits[2], digits[3]
    assert model.evaluate(X_val, Y_val)[0] == restored.best_val_loss


@pytest.mark.parametrize(("learning_rate", "what"), [(1e30, "became (nan|inf)|reached"), (100.0, "reached")])
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
    from support import engine as fastpath

    runs = []
    for workers, block_rows in ((1, 7500), (2, 7500), (2, 64), (3, 100)):
        monkeypatch.setattr(fastpath, "CHECK_WORKERS", workers)
        monkeypatch.setattr(fastpath, "CHECK_BLOCK_ROWS", block_rows)
        runs.append(train(SoftmaxModel(0.01, dtype=np.float32), *(a.astype(np.float32) if a.ndim == 2 else a
                                                                   for a in digits), **SETTINGS))
    assert runs[0].history == runs[1].history  # the same blocks on 1 or 2 workers: bit for bit
    for other in runs[2:]:  # other blocks: OpenBLAS may take another kernel path for a small block
        assert other.history["val_accuracy"] == runs[0].history["val_accuracy"]
        np.testing.assert_allclose(other.history["val_loss"], runs[0].history["val_loss"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gather_batches", [1, 3, 20, 64])
def test_shuffled_batches_are_the_permutations_of_batch_indices(gather_batches, monkeypatch):
    """Batches gathered ahead, in pieces that may cross an epoch's end, are exactly X[idx] of each epoch's order."""
    from concurrent.futures import ThreadPoolExecutor

    from support import engine as fastpath
    from utils import batch_indices

    monkeypatch.setattr(fastpath, "GATHER_BATCHES", gather_batches)
    rng = np.random.default_rng(5)
    X, targets = rng.standard_normal((83, 4)), rng.integers(0, 10, 83)  # 83 // 8 = 10 steps, 3 rows left out
    with ThreadPoolExecutor(1) as gatherer:
        got = [(e, Xb.copy(), tb.copy()) for e, Xb, tb in fastpath._batches(gatherer, X, targets, 8, 3,
                                                                           np.random.default_rng(7))]
    reference_rng = np.random.default_rng(7)
    expected = [(e, X[idx], targets[idx]) for e in range(3) for idx in batch_indices(83, 8, reference_rng)]
    assert len(got) == len(expected) == 30
    for (e, Xb, tb), (e_ref, Xb_ref, tb_ref) in zip(got, expected):
        assert e == e_ref and np.array_equal(Xb, Xb_ref) and np.array_equal(tb, tb_ref)


def test_early_stopping_gives_what_a_loop_waiting_for_every_check_gives(digits, monkeypatch):
    """Checks come back several checks late; stopping rolls back to the checked step exactly."""
    from support import engine as fastpath

    X_train, Y_train, X_val, Y_val = (a.astype(np.float32) if a.ndim == 2 else a for a in digits)
    settings = dict(SETTINGS, learning_rate=5.0, num_epochs=50, shuffle=True)
    runs = []
    for group in (1, 2, 6):  # 1: each check is collected at the next one
        monkeypatch.setattr(fastpath, "CHECKS_PER_GEMM", group)
        model = SoftmaxModel(dtype=np.float32)
        result = train(model, X_train, Y_train, X_val, Y_val, **settings, rng=np.random.default_rng(2),
                       early_stopping_patience=2)
        runs.append((model, result))
    (model, first), others = runs[0], runs[1:]
    assert first.stopped_early and first.stop_step < 50 * 20 - 5 * 6
    for other_model, other in others:
        assert (other.stop_step, other.stop_epoch, other.best_step) == (first.stop_step, first.stop_epoch,
                                                                        first.best_step)
        assert other.history["train_loss"] == first.history["train_loss"]  # the steps, to the last bit
        assert other.history["check_steps"] == first.history["check_steps"]
        # the checks' GEMMs have 16, 32 or 64 columns: float32 sums in another order, which differ in the last
        # bits by BLAS kernel (SkylakeX, Haswell); losses near 1e-4 carry an absolute error of about 1e-7
        np.testing.assert_allclose(other.history["val_loss"], first.history["val_loss"], rtol=1e-4, atol=1e-6)
        assert np.array_equal(other_model.w, model.w) and np.array_equal(other_model.grad, model.grad)


def test_the_callers_weight_array_receives_the_result(digits):
    model = SoftmaxModel()
    w = model.w
    train(model, *digits, **SETTINGS)
    assert model.w is w and w.flags.c_contiguous and np.any(w != 0)
    assert model.grad.shape == w.shape


def test_after_an_error_the_model_still_holds_its_own_array(digits):
    model = SoftmaxModel(dtype=np.float32)
    w = model.w
    X_train, Y_train, X_val, Y_val = (a.astype(np.float32) if a.ndim == 2 else a for a in digits)
    noise = np.random.default_rng(0).permutation(Y_train)
    with pytest.raises(TrainingDivergedError):
        train(model, X_train, noise, X_val, Y_val, learning_rate=1e30, batch_size=32, num_epochs=50)
    assert model.w is w and model.grad.shape == w.shape


def test_progress_bar_only_when_asked(digits, capsys):
    train(SoftmaxModel(), *digits, **SETTINGS, progress=False)
    assert capsys.readouterr().err == ""  # headless builds: nothing to leave in a PDF
    train(SoftmaxModel(), *digits, **SETTINGS, progress=True)
    assert "0/60 [" in capsys.readouterr().err  # tqdm.s bar over the 60 steps, on stderr


def test_final_is_what_the_weights_after_the_last_step_give_and_best_is_the_best_check(digits):
    """20 steps an epoch, a check every 4: the last step (59) is not a check step (56), so `final` is evaluated."""
    model = SoftmaxModel()
    result = train(model, *digits, **SETTINGS)
    assert result.stop_step == 59 and result.history["check_steps"][-1] == 56
    X_train, Y_train, X_val, Y_val = digits
    val_loss, val_acc = model.evaluate(X_val, Y_val)
    train_loss, train_acc = model.evaluate(X_train, Y_train)
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
    assert model.evaluate(*digits[2:])[0] == pytest.approx(result.final["val_loss"], rel=1e-9)
