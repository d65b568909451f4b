"""Command-line parameters: parsed, checked against the configurations, written only when they change."""

import pytest

from params import ParameterError, parse, write_if_changed


def test_overrides_reach_their_task_with_python_literals():
    out = parse("task3.num_epochs=20 task4.lambdas=[1,0.1] task2.class1=Shirt", dataset="fashion-mnist")
    assert out["task3"] == {"dataset": "fashion-mnist", "num_epochs": 20}
    assert out["task4"]["lambdas"] == [1, 0.1]
    assert (out["task2"]["class1"], out["task2"]["class2"]) == ("Shirt", "Coat")  # class2: the default pair's


def test_seed_sets_every_shuffle_seed_and_dataset_its_default_pair():
    out = parse("", seed="3", dataset="fashion-mnist")
    assert {task: values["shuffle_seed"] for task, values in out.items()} == {"task2": 3, "task3": 3, "task4": 3}
    assert (out["task2"]["class1"], out["task2"]["class2"]) == ("Pullover", "Coat")
    assert parse("") == {"task2": {}, "task3": {}, "task4": {}}


@pytest.mark.parametrize(
    ("params", "seed", "match"),
    [
        ("task3.num_epoch=20", "", r"task3 has no parameter 'num_epoch'; its parameters are .*num_epochs"),
        ("task9.x=1", "", r"unknown task 'task9' in 'task9.x=1'; the tasks are task2, task3, task4"),
        ("num_epochs=20", "", r"PARAMS items look like task3.num_epochs=20, received 'num_epochs=20'"),
        ("task3.num_epochs=abc", "", r"task3: Task3Config.num_epochs must be int, received 'abc'"),
        ("task3.learning_rate=[1]", "", r"learning_rate must be float, received \[1\]"),
        ("task2.class1=Shirt", "", r"class1 must be a class index 0..9 or one of .* for mnist, received 'Shirt'"),
        ("", "x", r"SEED must be an integer, received 'x'"),
        ("task2.class1=3", "", r"class1 and class2 must be two different classes, received 3 and 3"),
    ],
)
def test_bad_parameters_name_the_valid_ones(params, seed, match):
    with pytest.raises(ParameterError, match=match):
        parse(params, seed=seed)


def test_files_are_rewritten_only_when_their_content_changes(tmp_path):
    path = tmp_path / "params" / "task3.json"
    assert write_if_changed(path, "{}\n")
    mtime = path.stat().st_mtime_ns
    assert not write_if_changed(path, "{}\n") and path.stat().st_mtime_ns == mtime
    assert write_if_changed(path, '{"num_epochs": 20}\n') and path.read_text() == '{"num_epochs": 20}\n'
