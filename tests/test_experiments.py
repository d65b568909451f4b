"""The experiments' configurations, and a run shared by what it is made of: Task 4 takes Task 3's."""

import json

import numpy as np
import pytest

import experiments
from experiments import Task3Config, Task4Config, fit, run_key, run_task3, run_task4, shuffle_rng
from support import handoff
from utils import SoftmaxModel

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


def shared_runs(folder):
    return sorted((folder / "models").glob("run-*.npz"))


@pytest.mark.finished  # whole runs: every task's code
def test_task4_takes_task3s_run_only_when_it_is_the_same_computation(build_folder):
    t3 = Task3Config.from_notebook(**TINY)
    run_task3(t3)
    assert len(shared_runs(build_folder)) == 1  # Task 3 shares its run, under the digest of all it is made of
    t4 = Task4Config.from_notebook(**TINY, lambdas=(0.5,))
    taken = run_task4(t4)
    assert len(shared_runs(build_folder)) == 1  # lambda = 0 was Task 3's run: taken, not trained again
    shared_runs(build_folder)[0].unlink()
    trained = run_task4(t4)
    assert json.dumps(taken["runs"]["0.0"].to_dict()) == json.dumps(trained["runs"]["0.0"].to_dict())
    assert np.array_equal(taken["weights"]["0.0"], trained["weights"]["0.0"])
    assert list(taken["runs"]) == list(trained["runs"]) == ["2.0", "0.5", "0.0"]  # 2.0: a weight image


@pytest.mark.finished  # whole runs: every task's code
@pytest.mark.parametrize("change", ["num_epochs", "learning_rate", "batch_size", "dtype", "shuffle_seed",
                                    "shuffle_order", "early_stopping_patience", "train_size", "lambda", "code"])
def test_a_run_is_taken_only_when_all_it_is_made_of_is_the_same(build_folder, change, monkeypatch):
    """The digest covers every setting of the run, the data, the generator and the code: any one changed (a new
    setting too, with no list to add it to) and the run is trained again."""
    cfg = Task3Config.from_notebook(**TINY)

    def key(cfg, lam=0.0):
        data = experiments._softmax_data(cfg, {}, [])[3]
        settings = dict(learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, num_epochs=cfg.num_epochs,
                        shuffle=True, rng=shuffle_rng(cfg), early_stopping_patience=cfg.early_stopping_patience)
        return run_key(SoftmaxModel(lam, dtype=cfg.dtype), data, settings)

    other = {"num_epochs": 3, "learning_rate": 0.02, "batch_size": 64, "dtype": "float64", "shuffle_seed": 1,
             "shuffle_order": "generator", "early_stopping_patience": None, "train_size": 900}
    before = key(cfg)
    if change == "lambda":
        assert key(cfg, lam=0.1) != before
    elif change == "code":
        monkeypatch.setattr(experiments, "modules_digest", lambda *paths, sources_dir=None: "trainer.py edited")
        assert key(cfg) != before
    else:
        assert key(Task3Config.from_notebook(**{**TINY, change: other[change]})) != before
    assert key(cfg) == before or change == "code"


@pytest.mark.finished  # whole runs: every task's code
def test_a_taken_run_leaves_the_model_and_the_generator_as_training_would(build_folder):
    data = experiments._softmax_data(Task3Config.from_notebook(**TINY), {}, [])[3]
    settings = dict(learning_rate=0.01, batch_size=32, num_epochs=2, shuffle=True)
    trained_model, taken_model = SoftmaxModel(), SoftmaxModel()
    trained_rng, taken_rng = np.random.RandomState(3), np.random.RandomState(3)
    trained = fit(trained_model, *data, **settings, rng=trained_rng, share_in="synthetic")
    taken = fit(taken_model, *data, **settings, rng=taken_rng, share_in="synthetic")
    assert taken.to_dict() == trained.to_dict() and np.array_equal(taken_model.w, trained_model.w)
    assert taken_rng.randint(10**9) == trained_rng.randint(10**9)  # the generator drew what training draws


@pytest.mark.finished  # whole runs: every task's code
def test_task4_waits_for_task3s_run_while_a_build_is_still_making_it(build_folder, monkeypatch, tmp_path):
    import shutil
    import threading

    run_task3(Task3Config.from_notebook(**TINY))
    made = shared_runs(build_folder)[0]
    aside = tmp_path / "aside.npz"
    shutil.move(made, aside)  # Task 3 still runs: its run is not published yet
    pending = build_folder / "task3.running"
    pending.touch()
    monkeypatch.setenv(handoff.WAIT_ENV, str(pending))

    def task3_finishes():  # as the build does: the run is published, then the marker goes
        shutil.move(aside, made)
        pending.unlink()

    timer = threading.Timer(0.3, task3_finishes)
    timer.start()
    run_task4(Task4Config.from_notebook(**TINY, lambdas=(0.5,)))
    timer.join()
    assert shared_runs(build_folder) == [made]  # taken: nothing trained and shared beside it
    made.unlink()
    pending.touch()
    threading.Timer(0.2, pending.unlink).start()  # Task 3 failed: the wait ends with the marker, without a run
    run_task4(Task4Config.from_notebook(**TINY, lambdas=(0.5,)))
    assert shared_runs(build_folder) == [made]  # trained, and shared as Task 3's would have been


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


@pytest.mark.finished  # whole runs: every task's code
@pytest.mark.parametrize("order", ["course", "generator"])
def test_both_orders_give_the_same_run_for_the_same_seed_and_another_for_another(order):
    runs = [run_task3(Task3Config.from_notebook(**TINY, shuffle_order=order, shuffle_seed=seed))["runs"]["softmax"]
            for seed in (0, 0, 3)]
    assert runs[0].history == runs[1].history
    assert runs[0].history["train_loss"] != runs[2].history["train_loss"]


@pytest.mark.finished  # whole runs: every task's code
def test_tasks_3_and_4_stop_early_as_the_course_trainer_does_unless_patience_is_none():
    settings = dict(TINY, num_epochs=40, learning_rate=2.0, early_stopping_patience=2)
    stopped = run_task3(Task3Config.from_notebook(**settings))["runs"]["softmax"]
    assert stopped.stopped_early and stopped.stop_epoch < 39
    full = run_task3(Task3Config.from_notebook(**{**settings, "early_stopping_patience": None}))["runs"]["softmax"]
    assert not full.stopped_early and full.stop_epoch == 39
    t4 = run_task4(Task4Config.from_notebook(**settings, lambdas=(2.0,)))["runs"]
    assert all(run.stopped_early for run in t4.values())
    assert [c.from_notebook().early_stopping_patience for c in (Task3Config, Task4Config)] == [10, 10]


@pytest.mark.finished  # whole runs: every task's code
def test_task2_gives_the_shuffled_stop_over_several_seeds():
    from experiments import Task2Config, run_task2

    out = run_task2(Task2Config.from_notebook(dataset="synthetic", train_size=1500, num_epochs=2,
                                              num_epochs_early_stopping=30,
                                gradient_check_examples=5, shuffle_seed_runs=4, learning_rate=0.5))
    spread = out["shuffle_seeds"]
    assert spread["seeds"] == [0, 1, 2, 3] and len(spread["stop_epochs"]) == 4
    assert spread["stop_epochs"][0] == out["runs"]["early_stopping_shuffled"].stop_epoch  # seed 0 is 2e's run
