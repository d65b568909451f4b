"""Preprocessing, losses, models and gradients: exact values where the math gives them."""

import math

import numpy as np
import pytest

from utils import (
    BinaryModel,
    GradientCheckError,
    SoftmaxModel,
    accuracy,
    batch_indices,
    batch_loader,
    calculate_accuracy,
    confident_mistakes,
    confusion_matrix,
    cross_entropy_loss,
    gradient_check,
    numerical_gradient,
    one_hot_encode,
    pre_process_images,
    sigmoid,
    softmax,
)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_inputs(rng, n, d):
    """(n, d) float64 in [-1, 1] with a bias column of ones."""
    X = rng.uniform(-1, 1, (n, d))
    X[:, -1] = 1
    return X


# ---------------------------------------------------------------- preprocessing


def test_pre_process_maps_pixels_to_minus_one_one_and_appends_bias():
    X = np.array([[0] * 784, [255] * 784, [127] * 392 + [128] * 392], dtype=np.uint8)
    out = pre_process_images(X)
    assert out.shape == (3, 785) and out.dtype == np.float64
    assert np.all(out[0, :784] == -1) and np.all(out[1, :784] == 1)
    assert np.all(out[:, 784] == 1)
    assert out[2, 0] == pytest.approx(127 / 127.5 - 1, abs=1e-15)
    assert pre_process_images(X, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.zeros((2, 785), np.uint8), r"received \(2, 785\) \(already preprocessed\?\)"),
        (np.zeros((2, 28, 28), np.uint8), r"shape \(N, 784\), received \(2, 28, 28\)"),
        (np.full((2, 784), -0.5), r"pixels in \[0, 255\], received values in \[-0.5, -0.5\]"),
        (np.full((2, 784), 300), r"received values in \[300, 300\]"),
        (np.full((2, 784), np.nan), r"NaN or infinity"),
        (np.full((2, 784), "a"), r"numeric pixels, received dtype <U1"),
    ],
)
def test_pre_process_rejects_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        pre_process_images(X)


def test_one_hot_encode():
    Y = one_hot_encode(np.array([[3], [0], [9]]), 10)
    assert Y.shape == (3, 10)
    assert np.array_equal(Y.argmax(axis=1), [3, 0, 9]) and Y.sum() == 3


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, 10]), r"\[0, 10\), received values in \[0, 10\]"),
        (np.array([-1, 2]), r"received values in \[-1, 2\]"),
        (np.array([0.5, 1.0]), r"must be integers, received dtype float64"),
        (np.zeros((2, 2), int), r"shape \(N,\) or \(N, 1\), received \(2, 2\)"),
    ],
)
def test_one_hot_encode_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        one_hot_encode(labels, 10)


# ---------------------------------------------------------------- batches


def test_batch_indices_cover_each_example_once_and_drop_the_partial_batch(rng):
    batches = batch_indices(1000, 128, shuffle=True, rng=rng)
    assert len(batches) == 7 and all(len(b) == 128 for b in batches)
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == 896 and seen.min() >= 0 and seen.max() < 1000


def test_without_drop_last_the_partial_batch_comes_last():
    batches = batch_indices(10, 3, drop_last=False)
    assert [len(b) for b in batches] == [3, 3, 3, 1] and np.array_equal(np.concatenate(batches), np.arange(10))


def test_batch_indices_without_shuffle_are_in_order():
    assert np.array_equal(np.concatenate(batch_indices(10, 3)), np.arange(9))
    assert np.array_equal(np.concatenate(batch_indices(10, 3, rng=np.random.default_rng(0))), np.arange(9))


def test_batch_indices_are_deterministic_for_a_seed():
    a = batch_indices(500, 50, shuffle=True, rng=np.random.default_rng(7))
    b = batch_indices(500, 50, shuffle=True, rng=np.random.default_rng(7))
    c = batch_indices(500, 50, shuffle=True, rng=np.random.default_rng(8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_batch_loader_leaves_inputs_untouched_and_keeps_pairs_together(rng):
    X = np.arange(40, dtype=float).reshape(20, 2)
    Y = np.arange(20)
    X0, Y0 = X.copy(), Y.copy()
    for X_b, Y_b in batch_loader(X, Y, 6, shuffle=True, rng=rng):
        X_b[:] = -1  # a caller scribbling on its batch must not reach the data set
        assert len(Y_b) == 6
    for X_b, Y_b in batch_loader(X0, Y0, 6, True, rng=np.random.default_rng(0)):
        assert np.array_equal(X_b[:, 0] / 2, Y_b)
    assert np.array_equal(X, X0) and np.array_equal(Y, Y0)


@pytest.mark.parametrize("batch_size", [0, 21])
def test_batch_size_out_of_range(batch_size):
    with pytest.raises(ValueError, match=rf"batch_size must be in \[1, 20\].*received {batch_size}"):
        batch_indices(20, batch_size)


# ---------------------------------------------------------------- activations and losses


def test_exact_values_at_zero():
    assert sigmoid(np.zeros(3)).tolist() == [0.5, 0.5, 0.5]
    assert np.all(softmax(np.zeros((4, 10))) == 0.1)
    binary = np.array([[0], [1], [1], [0], [1]])
    assert cross_entropy_loss(binary, np.full((5, 1), 0.5)) == pytest.approx(math.log(2), abs=1e-15)
    assert cross_entropy_loss(one_hot_encode(np.arange(5), 10), np.full((5, 10), 0.1)) == pytest.approx(math.log(10))


@pytest.mark.filterwarnings("error")
def test_extreme_logits_give_finite_values_without_warnings():
    z = np.array([[-1000.0], [1000.0], [-1000.0], [1000.0]])
    t = np.array([[0.0], [1.0], [1.0], [0.0]])
    assert np.array_equal(sigmoid(z), [[0], [1], [0], [1]])
    assert math.isfinite(cross_entropy_loss(t, sigmoid(z)))  # two right (0) and two wrong (clipped, finite)
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    assert np.all(np.isfinite(softmax(logits))) and np.array_equal(softmax(logits), [[1, 0, 0], [0, 1, 0]])
    assert math.isfinite(cross_entropy_loss(np.array([0, 0]), softmax(logits)))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_loss_of_probabilities_that_rounded_to_0_or_1_is_finite_and_says_so_in_its_cap(dtype):
    """outputs of exactly 0 or 1 (a confident mistake past the dtype's precision) count as the nearest numbers inside
    (0, 1): the loss is large and finite, never inf or nan."""
    info = np.finfo(dtype)
    outputs = np.array([[1.0], [0.0], [1.0]], dtype=dtype)  # wrong, wrong, right
    loss = cross_entropy_loss(np.array([[0], [1], [1]]), outputs)
    assert loss == pytest.approx((-math.log(info.epsneg) - math.log(info.tiny)) / 3, rel=1e-6)
    assert cross_entropy_loss(np.array([2]), np.array([[0.5, 0.5, 0.0]], dtype=dtype)) == pytest.approx(
        -math.log(info.tiny), rel=1e-6)


def test_losses_match_the_textbook_formulas_on_moderate_logits(rng):
    z = rng.normal(size=(50, 1))
    t = rng.integers(0, 2, (50, 1)).astype(float)
    p = 1 / (1 + np.exp(-z))
    textbook = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert cross_entropy_loss(t, sigmoid(z)) == pytest.approx(textbook, rel=1e-12)
    logits = rng.normal(size=(50, 10)) * 5
    labels = rng.integers(0, 10, 50)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[np.arange(50), labels]))
    assert cross_entropy_loss(one_hot_encode(labels, 10), softmax(logits)) == pytest.approx(expected, rel=1e-12)
    assert cross_entropy_loss(labels, softmax(logits)) == pytest.approx(expected, rel=1e-12)  # labels: ours
    assert isinstance(cross_entropy_loss(t, sigmoid(z)), float)


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"binary targets must have shape \(3, 1\) like the outputs.*received \(3,\)"):
        cross_entropy_loss(np.zeros(3), np.full((3, 1), 0.5))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) or \(N, 1\), received \(2, 3\)"):
        cross_entropy_loss(np.zeros((2, 3)), np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=r"outputs must have shape \(N, K\), received \(3,\)"):
        cross_entropy_loss(np.zeros(3), np.full(3, 0.5))


def test_activations_write_into_a_buffer_when_given_one(rng):
    logits = rng.normal(size=(6, 4))
    for activation in (sigmoid, softmax):
        out = np.empty_like(logits)
        assert activation(logits, out=out) is out and np.array_equal(out, activation(logits))
    model = SoftmaxModel(num_inputs=4, num_classes=4)
    model.w = rng.normal(size=(4, 4))
    buffer = np.empty((6, 4))
    assert model.forward(logits, out=buffer) is buffer and np.allclose(buffer, softmax(logits @ model.w))


# ---------------------------------------------------------------- models


def test_models_start_at_zero_with_the_course_shapes():
    assert BinaryModel().w.shape == (785, 1) and not BinaryModel().w.any() and BinaryModel().I == 785
    assert SoftmaxModel(0.0).w.shape == (785, 10) and not SoftmaxModel().w.any() and SoftmaxModel(2.0).num_outputs == 10
    assert BinaryModel().grad is None
    X = random_inputs(np.random.default_rng(0), 4, 785)
    assert np.all(BinaryModel().forward(X) == 0.5)
    assert np.all(SoftmaxModel().forward(X) == 0.1)


def test_model_rejects_input_without_bias_column():
    with pytest.raises(ValueError, match=r"X must have shape \(N, 785\), received \(2, 784\).*pre_process_images"):
        SoftmaxModel().forward(np.zeros((2, 784)))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_model_rejects_bad_lambda(bad):
    with pytest.raises(ValueError, match=r"l2_reg_lambda must be a finite number >= 0, received"):
        SoftmaxModel(l2_reg_lambda=bad)


def test_binary_prediction_at_exactly_one_half_is_class_one():
    model = BinaryModel(num_inputs=2)
    X = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert calculate_accuracy(X, np.array([[1], [0]]), model) == 0.5  # output 0.5 -> class 1 for both


def test_softmax_accuracy_is_argmax_agreement():
    model = SoftmaxModel(num_inputs=2, num_classes=3)
    model.w[:] = [[1, 0, 0], [0, 2, 0]]
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    assert calculate_accuracy(X, np.array([0, 1, 1, 0]), model) == 0.75


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_binary_gradient_matches_centred_differences(rng, l2):
    model = BinaryModel(l2_reg_lambda=l2, num_inputs=30)
    model.w = rng.normal(size=model.w.shape)
    X = random_inputs(rng, 40, 30)
    targets = rng.integers(0, 2, (40, 1)).astype(float)
    assert gradient_check(model, X, targets) <= 1e-6


@pytest.mark.parametrize("l2", [0.0, 0.5])
@pytest.mark.parametrize("targets_as", ["labels", "one-hot"])
def test_softmax_gradient_matches_centred_differences(rng, l2, targets_as):
    model = SoftmaxModel(l2_reg_lambda=l2, num_inputs=25, num_classes=10)
    model.w = rng.normal(size=model.w.shape)
    X = random_inputs(rng, 40, 25)
    labels = rng.integers(0, 10, 40)
    targets = labels if targets_as == "labels" else one_hot_encode(labels, 10)
    assert gradient_check(model, X, targets) <= 1e-6


@pytest.mark.parametrize("binary", [False, True])
def test_the_gradient_check_differentiates_the_loss_of_forward_as_the_courses_does(rng, binary, monkeypatch):
    """Its numbers are centred differences of cross_entropy_loss(targets, model.forward(X)) (the course's
    gradient_approximation_test): a loss summed instead of averaged over the batch disagrees with backward, and the
    error names the loss and backward."""
    import utils

    model = BinaryModel(num_inputs=30) if binary else SoftmaxModel(num_inputs=30, num_classes=7)
    model.w = rng.normal(size=model.w.shape)
    X = random_inputs(rng, 13, 30)
    targets = rng.integers(0, 2, (13, 1)).astype(float) if binary else one_hot_encode(rng.integers(0, 7, 13), 7)
    expected = numerical_gradient(lambda: cross_entropy_loss(targets, model.forward(X)), model.w)
    model.backward(X, model.forward(X), targets)
    np.testing.assert_allclose(model.grad, expected, rtol=0, atol=1e-6)
    original = utils.cross_entropy_loss
    monkeypatch.setattr(utils, "cross_entropy_loss", lambda t, o: original(t, o) * len(o))  # summed
    with pytest.raises(GradientCheckError, match=r"backward's gradient and centred differences of "
                                                 r"cross_entropy_loss\(targets, forward\(X\)\) differ by .* one of "
                                                 r"cross_entropy_loss, forward and backward is wrong"):
        gradient_check(model, X, targets)


def test_full_size_softmax_gradient_check(rng):
    """The notebooks' check: 785 x 10 weights, random, on a handful of examples."""
    model = SoftmaxModel(l2_reg_lambda=0.1)
    model.w = rng.normal(size=model.w.shape) * 0.1
    X = random_inputs(rng, 8, 785)
    assert gradient_check(model, X, rng.integers(0, 10, 8)) <= 1e-6


def test_l2_adds_lambda_times_w_to_the_gradient(rng):
    X = random_inputs(rng, 10, 6)
    labels = rng.integers(0, 3, 10)
    plain, regularised = SoftmaxModel(0.0, num_inputs=6, num_classes=3), SoftmaxModel(2.0, num_inputs=6, num_classes=3)
    plain.w = regularised.w = rng.normal(size=(6, 3))
    for model in (plain, regularised):
        model.backward(X, model.forward(X), labels)
    np.testing.assert_allclose(regularised.grad - plain.grad, 2.0 * plain.w, rtol=0, atol=1e-15)


def test_gradient_check_catches_a_wrong_gradient(rng):
    class ForgetsL2(SoftmaxModel):
        def backward(self, X, outputs, targets):
            super().backward(X, outputs, targets)
            self.grad -= self.l2_reg_lambda * self.w  # the lambda * w term is missing

    model = ForgetsL2(l2_reg_lambda=0.5, num_inputs=5, num_classes=3)
    model.w = rng.normal(size=model.w.shape)
    with pytest.raises(GradientCheckError, match=r"\+ lambda/2 sum w\^2 differ by .* at w\[\d+, \d+\] \(analytic .*\), "
                                                 r"above the tolerance epsilon\^2 = 1.0e-06"):
        gradient_check(model, random_inputs(rng, 10, 5), rng.integers(0, 3, 10))


def test_gradient_check_refuses_float32():
    with pytest.raises(ValueError, match="float64 weights and X, received float32"):
        gradient_check(SoftmaxModel(dtype=np.float32), np.zeros((2, 785)), np.array([0, 1]))


def test_backward_leaves_probs_untouched(rng):
    model = SoftmaxModel(num_inputs=4, num_classes=3)
    X = random_inputs(rng, 5, 4)
    probs = model.forward(X)
    before = probs.copy()
    model.backward(X, probs, rng.integers(0, 3, 5))
    assert np.array_equal(probs, before)


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    counts = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        confusion_matrix(np.array([0]), np.array([3]), 3)


def test_confident_mistakes_are_the_wrong_predictions_by_probability():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95]])
    labels = np.array([1, 1, 1, 0])  # rows 0, 2 and 3 are wrong, with probabilities 0.9, 0.6, 0.95
    assert confident_mistakes(probs, labels, 2).tolist() == [3, 0]
    binary = np.array([[0.9], [0.3], [0.45]])  # probability of class 1
    assert confident_mistakes(binary, np.array([0, 0, 1]), 5).tolist() == [0, 2]


def test_accuracy_is_argmax_agreement_ties_included(rng):
    outputs = rng.integers(0, 3, size=(500, 4)).astype(float)  # many ties for the maximum
    labels = rng.integers(0, 4, 500)
    assert accuracy(labels, outputs) == np.mean(outputs.argmax(axis=1) == labels)
    assert accuracy(one_hot_encode(labels, 4), outputs) == accuracy(labels, outputs)
    outputs_f = np.asfortranarray(rng.normal(size=(300, 4)))
    labels_f = rng.integers(0, 4, 300)
    assert accuracy(labels_f, outputs_f) == np.mean(outputs_f.argmax(axis=1) == labels_f)
