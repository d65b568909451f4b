"""The experiments' configurations and the reuse of Task 3's run by Task 4."""

import json

import numpy as np
import pytest

from experiments import (
    SOFTMAX_RUN,
    Task3Config,
    Task4Config,
    run_task3,
    run_task4,
    share_softmax_run,
    take_softmax_run,
)
from support import handoff

TINY = dict(dataset="synthetic", train_size=1000, num_epochs=2, gradient_check_examples=5)


def test_the_notebooks_defaults_are_the_course_values():
    """The shipped parameters cells hold the course's values (COURSE_2022), which are kept apart from them."""
    from experiments import COURSE_2022, TASK_CONFIGS

    for task, config in TASK_CONFIGS.items():
        assert config.from_notebook().as_dict() == COURSE_2022[task], task
    t4 = Task4Config.from_notebook()
    assert (t4.learning_rate, t4.batch_size, t4.num_epochs, t4.train_size) == (0.01, 128, 50, 20000)
    assert t4.lambdas == (2.0, 0.2, 0.02, 0.002) and t4.changed() == {}
    assert Task4Config.from_notebook(num_epochs=3).changed() == {"num_epochs": 3}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(num_epochs="50"), TypeError, r"Task3Config.num_epochs must be int, received '50'"),
        (dict(learning_rate=True), TypeError, r"learning_rate must be float, received True"),
        (dict(dataset="cifar10"), ValueError, r"dataset must be one of .* received 'cifar10'"),
        (dict(dtype="float16"), ValueError, r"dtype must be 'float32' or 'float64', received 'float16'"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        Task3Config.from_notebook(**kwargs)


@pytest.fixture
def build_folder(tmp_path, monkeypatch):
    """A build folder that Task 3 shares its run into and Task 4 takes it from, as the build sets them."""
    monkeypatch.setenv(handoff.OUT_ENV, str(tmp_path))
    monkeypatch.setenv(handoff.SHARED_ENV, str(tmp_path))
    return tmp_path


def test_task4_reuses_task3s_run_only_when_it_is_the_same_computation(build_folder):
    t3 = Task3Config.from_notebook(**TINY)
    out3 = run_task3(t3)
    share_softmax_run(out3["runs"]["softmax"], out3["weights"]["softmax"], t3)
    assert (build_folder / "models" / f"{SOFTMAX_RUN}.npz").exists()
    t4 = Task4Config.from_notebook(**TINY, lambdas=(0.5,))
    reused = run_task4(t4)
    trained = run_task4(t4, reuse_task3=False)
    assert reused["lambda0_from_task3"] and not trained["lambda0_from_task3"]
    assert json.dumps(reused["runs"]["0.0"].to_dict()) == json.dumps(trained["runs"]["0.0"].to_dict())
    assert np.array_equal(reused["weights"]["0.0"], trained["weights"]["0.0"])
    assert list(reused["runs"]) == list(trained["runs"]) == ["2.0", "0.5", "0.0"]  # 2.0: a weight image
    assert take_softmax_run(Task4Config.from_notebook(**{**TINY, "num_epochs": 3})) is None  # other settings
    (build_folder / "models" / f"{SOFTMAX_RUN}.npz").unlink()
    assert take_softmax_run(t4) is None


def test_task4_waits_for_task3s_run_while_a_build_is_still_making_it(build_folder, monkeypatch):
    import threading

    t3 = Task3Config.from_notebook(**TINY)
    out3 = run_task3(t3)
    pending = build_folder / "task3.running"
    pending.touch()
    monkeypatch.setenv(handoff.WAIT_ENV, str(pending))

    def task3_finishes():  # as the build does: the run is published, then the marker goes
        share_softmax_run(out3["runs"]["softmax"], out3["weights"]["softmax"], t3)
        pending.unlink()

    timer = threading.Timer(0.3, task3_finishes)
    timer.start()
    assert take_softmax_run(Task4Config.from_notebook(**TINY)) is not None
    timer.join()
    (build_folder / "models" / f"{SOFTMAX_RUN}.npz").unlink()
    pending.touch()
    threading.Timer(0.2, pending.unlink).start()  # Task 3 failed: the wait ends with the marker, without a run
    assert take_softmax_run(Task4Config.from_notebook(**TINY)) is None


def test_while_waiting_an_old_run_is_read_again_only_when_replaced(build_folder, monkeypatch):
    import threading

    t3 = Task3Config.from_notebook(**TINY)
    out3 = run_task3(t3)
    share_softmax_run(out3["runs"]["softmax"], out3["weights"]["softmax"], t3)  # a run of other settings than t4's
    pending = build_folder / "task3.running"
    pending.touch()
    monkeypatch.setenv(handoff.WAIT_ENV, str(pending))
    loads, load = [], handoff._load
    monkeypatch.setattr(handoff, "_load", lambda *args: loads.append(1) or load(*args))
    t3_again = Task3Config.from_notebook(**{**TINY, "num_epochs": 3})

    def task3_finishes():
        out = run_task3(t3_again)
        share_softmax_run(out["runs"]["softmax"], out["weights"]["softmax"], t3_again)
        pending.unlink()

    timer = threading.Timer(0.5, task3_finishes)
    timer.start()
    assert take_softmax_run(Task4Config.from_notebook(**{**TINY, "num_epochs": 3})) is not None
    timer.join()
    assert len(loads) <= 3  # at the start, once replaced (and once more if the rename fell between two looks)


def test_a_saved_run_of_other_code_is_not_reused(build_folder, monkeypatch):
    t3 = Task3Config.from_notebook(**TINY)
    out3 = run_task3(t3)
    share_softmax_run(out3["runs"]["softmax"], out3["weights"]["softmax"], t3)
    t4 = Task4Config.from_notebook(**TINY, lambdas=(0.5,))
    assert take_softmax_run(t4) is not None
    monkeypatch.setattr(handoff, "modules_digest", lambda *paths, sources_dir=None: "trainer.py edited since")
    assert take_softmax_run(t4) is None


def test_the_course_order_is_what_its_batch_loader_draws_from_numpys_global_generator():
    """The course's task2.py seeds numpy's global generator with 0 and its batch_loader shuffles a fresh index list
    every epoch; RandomState(0) passed to batch_indices draws the same orders, with no global state."""
    from experiments import Task2Config, shuffle_rng
    from utils import batch_indices

    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(0)  # noqa: NPY002 (the course's code, reproduced)
        expected = []
        for _ in range(3):  # three epochs of the course's batch_loader(shuffle=True), batch size 8 of 83
            indices = list(range(83))
            np.random.shuffle(indices)  # noqa: NPY002
            expected.append([indices[i * 8:(i + 1) * 8] for i in range(83 // 8)])
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    rng = shuffle_rng(Task2Config.from_notebook())
    assert isinstance(rng, np.random.RandomState)
    assert [[list(b) for b in batch_indices(83, 8, shuffle=True, rng=rng)] for _ in range(3)] == expected
    np.random.seed(0)  # noqa: NPY002 (without rng: numpy's global generator, as the course's batch_loader)
    try:
        assert [[list(b) for b in batch_indices(83, 8, shuffle=True)] for _ in range(3)] == expected
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    generator = shuffle_rng(Task2Config.from_notebook(shuffle_order="generator"))
    assert isinstance(generator, np.random.Generator)
    first = batch_indices(83, 8, shuffle=True, rng=generator)[0]
    assert list(first) == list(np.random.default_rng(0).permutation(83)[:8])
    seeded = shuffle_rng(Task2Config.from_notebook(shuffle_seed=3))
    assert seeded.randint(1 << 30) == np.random.RandomState(3).randint(1 << 30)


@pytest.mark.parametrize("order", ["course", "generator"])
def test_both_orders_give_the_same_run_for_the_same_seed_and_another_for_another(order):
    runs = [run_task3(Task3Config.from_notebook(**TINY, shuffle_order=order, shuffle_seed=seed))["runs"]["softmax"]
            for seed in (0, 0, 3)]
    assert runs[0].history == runs[1].history
    assert runs[0].history["train_loss"] != runs[2].history["train_loss"]


def test_tasks_3_and_4_stop_early_as_the_course_trainer_does_unless_patience_is_none():
    settings = dict(TINY, num_epochs=40, learning_rate=2.0, early_stopping_patience=2)
    stopped = run_task3(Task3Config.from_notebook(**settings))["runs"]["softmax"]
    assert stopped.stopped_early and stopped.stop_epoch < 39
    full = run_task3(Task3Config.from_notebook(**{**settings, "early_stopping_patience": None}))["runs"]["softmax"]
    assert not full.stopped_early and full.stop_epoch == 39
    t4 = run_task4(Task4Config.from_notebook(**settings, lambdas=(2.0,)))["runs"]
    assert all(run.stopped_early for run in t4.values())
    assert [c.from_notebook().early_stopping_patience for c in (Task3Config, Task4Config)] == [10, 10]


def test_task2_gives_the_shuffled_stop_over_several_seeds():
    from experiments import Task2Config, run_task2

    out = run_task2(Task2Config.from_notebook(dataset="synthetic", train_size=1500, num_epochs=2,
                                              num_epochs_early_stopping=30,
                                gradient_check_examples=5, shuffle_seed_runs=4, learning_rate=0.5))
    spread = out["shuffle_seeds"]
    assert spread["seeds"] == [0, 1, 2, 3] and len(spread["stop_epochs"]) == 4
    assert spread["stop_epochs"][0] == out["runs"]["early_stopping_shuffled"].stop_epoch  # seed 0 is 2e's run
