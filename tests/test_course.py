"""The course's own code, run against ours: the self-checks of its task2a.py and task3a.py, and task scripts written
the way its task2.py and task3.py are (a trainer subclass with train_step and validation_step), calling utils.py
and trainer.py exactly as the course's files do. Written here in our words (TDT4265_StarterCode, assignment1/, 2022).
"""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import threadpoolctl

import mnist
import utils
from experiments import OFFICIAL_2022
from trainer import BaseTrainer
from utils import BinaryModel, SoftmaxModel, calculate_accuracy, cross_entropy_loss, one_hot_encode, pre_process_images

matplotlib.use("Agg")


@pytest.fixture
def course_data(monkeypatch):
    """utils' loaders as the course calls them (no data set named: MNIST), fed synthetic digits: no download.
    BLAS single-threaded: the self-checks run 16,000 tiny products, which OpenBLAS's threads slow down."""
    arrays = mnist.synthetic_mnist(num_train=20000, num_test=2000, seed=1)  # the course takes the first 20,000
    monkeypatch.setattr(mnist, "load", lambda dataset="mnist", cache_dir=None: arrays)
    saved = np.random.get_state()  # noqa: NPY002
    np.random.seed(1)  # noqa: NPY002 (the course's scripts seed numpy's global generator at import)
    with threadpoolctl.threadpool_limits(1, "blas"):
        yield
    np.random.set_state(saved)  # noqa: NPY002


def gradient_approximation_test(model, X: np.ndarray, Y: np.ndarray) -> None:
    """The course's check: from random weights N(0, 1/785^2), each weight moved by +-epsilon, the centred difference
    of cross_entropy_loss(Y, model.forward(X)) against model.grad after backward; within epsilon^2."""
    w_orig = np.random.normal(loc=0, scale=1 / model.w.shape[0] ** 2, size=model.w.shape)  # noqa: NPY002
    epsilon = 1e-3
    for index in np.ndindex(w_orig.shape):
        model.w = w_orig.copy()
        model.w[index] = w_orig[index] + epsilon
        cost1 = cross_entropy_loss(Y, model.forward(X))
        model.w[index] = w_orig[index] - epsilon
        cost2 = cross_entropy_loss(Y, model.forward(X))
        model.w[index] = w_orig[index]
        model.backward(X, model.forward(X), Y)
        assert abs((cost1 - cost2) / (2 * epsilon) - model.grad[index]) <= epsilon**2, f"weight {index}"


def test_the_self_checks_of_task2a(course_data):
    X_train, Y_train, *_ = utils.load_binary_dataset(2, 3)
    X_train = pre_process_images(X_train)
    assert X_train.max() <= 1.0 and -1 <= X_train.min() < 0 and X_train.shape[1] == 785
    assert Y_train.shape == (len(X_train), 1)
    model = BinaryModel()
    np.testing.assert_almost_equal(model.forward(X_train).mean(), 0.5)  # zero weights
    X_train, Y_train = X_train[:100], Y_train[:100]
    for _ in range(2):
        gradient_approximation_test(model, X_train, Y_train)
        model.w = np.random.randn(*model.w.shape)  # noqa: NPY002


def test_the_self_checks_of_task3a(course_data):
    Y = np.zeros((1, 1), dtype=int)
    Y[0, 0] = 3
    Y = one_hot_encode(Y, 10)
    assert Y[0, 3] == 1 and Y.sum() == 1
    X_train, Y_train, *_ = utils.load_full_mnist()
    assert Y_train.shape == (len(X_train), 1)
    X_train = pre_process_images(X_train)
    Y_train = one_hot_encode(Y_train, 10)
    assert X_train.shape[1] == 785
    model = SoftmaxModel(0.0)
    np.testing.assert_almost_equal(model.forward(X_train).mean(), 1 / 10)
    X_train, Y_train = X_train[:100], Y_train[:100]
    for _ in range(2):
        gradient_approximation_test(model, X_train, Y_train)
        model.w = np.random.randn(*model.w.shape)  # noqa: NPY002


class LogisticTrainer(BaseTrainer):
    """As the course's task2.py writes it (its solution's train_step: forward, backward, update, zero_grad)."""

    def train_step(self, X_batch, Y_batch):
        outputs = self.model.forward(X_batch)
        self.model.backward(X_batch, outputs, Y_batch)
        self.model.w = self.model.w - self.model.grad * self.learning_rate
        self.model.zero_grad()
        return cross_entropy_loss(Y_batch, outputs)

    def validation_step(self):
        outputs = self.model.forward(self.X_val)
        loss = cross_entropy_loss(self.Y_val, outputs)
        return loss, calculate_accuracy(self.X_train, self.Y_train, self.model), calculate_accuracy(
            self.X_val, self.Y_val, self.model)


class SoftmaxTrainer(LogisticTrainer):
    """The course's task3.py: the same two steps, for the softmax model and one-hot targets."""


def test_a_course_style_task2_script_runs_and_plots(course_data, tmp_path):
    import matplotlib.pyplot as plt

    X_train, Y_train, X_val, Y_val = utils.load_binary_dataset(2, 3)
    X_train, X_val = pre_process_images(X_train), pre_process_images(X_val)
    histories = {}
    for shuffle_dataset in (False, True):  # 2b, then 2e
        model = BinaryModel()
        trainer = LogisticTrainer(model, 0.05, 128, shuffle_dataset, X_train, Y_train, X_val, Y_val)
        train_history, val_history = trainer.train(20)
        histories[shuffle_dataset] = train_history, val_history
        steps_per_epoch = len(X_train) // 128
        assert list(train_history["loss"]) == list(range(len(train_history["loss"])))  # every step, from 0
        assert list(val_history["loss"]) == list(train_history["accuracy"])  # the checks
        assert list(val_history["loss"])[:2] == [0, max(1, steps_per_epoch // 5)]
        assert calculate_accuracy(X_val, Y_val, model) > 0.9
    assert histories[False][0]["loss"] != histories[True][0]["loss"]
    plt.ylim([0.0, 0.2])
    utils.plot_loss(histories[False][0]["loss"], "Training Loss", npoints_to_average=10)
    utils.plot_loss(histories[False][1]["loss"], "Validation Loss")
    plt.legend()
    plt.savefig(tmp_path / "task2b_binary_train_loss.png")
    plt.close("all")
    assert (tmp_path / "task2b_binary_train_loss.png").stat().st_size > 1000


def test_a_course_style_task3_script_runs_with_one_hot_targets(course_data):
    X_train, Y_train, X_val, Y_val = utils.load_full_mnist()
    X_train, X_val = pre_process_images(X_train), pre_process_images(X_val)
    Y_train, Y_val = one_hot_encode(Y_train, 10), one_hot_encode(Y_val, 10)
    for l2_reg_lambda in (0, 2.0):
        model = SoftmaxModel(l2_reg_lambda)
        trainer = SoftmaxTrainer(model, 0.01, 128, True, X_train, Y_train, X_val, Y_val)
        train_history, val_history = trainer.train(5)
        assert len(val_history["accuracy"]) == len(train_history["accuracy"]) > 5
        assert cross_entropy_loss(Y_val, model.forward(X_val)) < np.log(10)


def test_our_trainer_is_the_course_loop_for_a_course_subclass(course_data):
    """A course-style subclass with its own validation_step trains as the course's loop does by default (each check
    at once), and the fast engine, handed in, runs that same validation_step: the same history."""
    from support.engine import FastEngine

    X_train, Y_train, X_val, Y_val = utils.load_binary_dataset(2, 3)
    X_train, X_val = pre_process_images(X_train), pre_process_images(X_val)
    assert BaseTrainer(BinaryModel(), 0.05, 128, False, X_train, Y_train, X_val, Y_val).engine.__name__ == "PlainEngine"
    histories = [LogisticTrainer(BinaryModel(), 0.05, 128, False, X_train, Y_train, X_val, Y_val, engine=engine)
                 .train(5) for engine in (None, FastEngine)]
    assert histories[0] == histories[1]


MNIST = pytest.mark.skipif(
    not all((Path(__file__).resolve().parent.parent / "data" / "mnist" / name).exists()
            for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")),
    reason="needs MNIST in data/mnist (make data; CI runs make report first)")


@MNIST
def test_the_course_style_task2d_run_stops_in_the_epoch_the_report_gives():
    """The course's Task 2d on MNIST, as its files run it: 500 epochs, early stopping, no shuffling, float64."""
    saved = np.random.get_state()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002 (the course's task2.py)
    try:
        X_train, Y_train, X_val, Y_val = utils.load_binary_dataset(2, 3)
        X_train, X_val = pre_process_images(X_train), pre_process_images(X_val)
        model = BinaryModel()
        trainer = LogisticTrainer(model, 0.05, 128, False, X_train, Y_train, X_val, Y_val)
        train_history, val_history = trainer.train(500)
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    assert trainer.stopped_early
    assert trainer.stop_step // (len(X_train) // 128) == OFFICIAL_2022["task2d_stop_epoch"] == 33
    assert calculate_accuracy(X_val, Y_val, model) == pytest.approx(0.9794, abs=5e-4)  # the report's 97.94%
