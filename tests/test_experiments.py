"""The experiments' configurations and the reuse of Task 3's run by Task 4."""

import json

import numpy as np
import pytest

from experiments import (
    Task3Config,
    Task4Config,
    load_softmax_run,
    run_task3,
    run_task4,
    save_softmax_run,
)

TINY = dict(dataset="synthetic", train_size=1000, num_epochs=2, gradient_check_examples=5)


def test_defaults_are_the_course_specification():
    t4 = Task4Config()
    assert (t4.learning_rate, t4.batch_size, t4.num_epochs, t4.train_size) == (0.01, 128, 50, 20000)
    assert t4.lambdas == (2.0, 0.2, 0.02, 0.002) and t4.changed() == {}
    assert Task4Config(num_epochs=3).changed() == {"num_epochs": 3}


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
        Task3Config(**kwargs)


def test_task4_reuses_task3s_run_only_when_it_is_the_same_computation(tmp_path):
    t3 = Task3Config(**TINY)
    out3 = run_task3(t3)
    path = tmp_path / "task3_softmax.npz"
    save_softmax_run(path, out3["runs"]["softmax"], out3["weights"]["softmax"], t3)
    t4 = Task4Config(**TINY, lambdas=(0.5,))
    reused = run_task4(t4, lambda0_run=load_softmax_run(path, t4))
    trained = run_task4(t4)
    assert reused["lambda0_from_task3"] and not trained["lambda0_from_task3"]
    assert json.dumps(reused["runs"]["0.0"].to_dict()) == json.dumps(trained["runs"]["0.0"].to_dict())
    assert np.array_equal(reused["weights"]["0.0"], trained["weights"]["0.0"])
    assert list(reused["runs"]) == list(trained["runs"]) == ["2.0", "0.5", "0.0"]  # 2.0: a weight image
    assert load_softmax_run(path, Task4Config(**{**TINY, "num_epochs": 3})) is None  # other settings
    assert load_softmax_run(tmp_path / "missing.npz", t4) is None
