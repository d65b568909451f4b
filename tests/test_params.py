"""Command-line parameters: parsed, checked completely (names, types, ranges) before anything runs."""

import pytest

from tools.params import ParameterError, parse, resolve, split_items


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
    assert parse("", dataset="  ") == parse("")  # DATASET= (empty) is the default


def test_values_come_back_as_they_went_in():
    out = resolve("task3.learning_rate=0.00001 task4.lambdas=[0.2, 0.00002] task2.learning_rate=1e30")
    assert out["task3"]["learning_rate"] == 1e-05 and isinstance(out["task3"]["learning_rate"], float)
    assert out["task4"]["lambdas"] == (0.2, 2e-05)
    assert out["task2"]["learning_rate"] == 1e30
    assert out["task3"]["num_epochs"] == 50  # every parameter, not only the overrides


def test_items_split_at_spaces_outside_brackets_and_quotes():
    assert split_items(' task4.lambdas=[1, 0.1]  task2.class1="T-shirt/top" task3.x=( 1 , 2 ) ') == [
        "task4.lambdas=[1, 0.1]", 'task2.class1="T-shirt/top"', "task3.x=( 1 , 2 )"]
    assert split_items("task2.class1='a b'") == ["task2.class1='a b'"]


@pytest.mark.parametrize(
    ("params", "seed", "dataset", "match"),
    [
        ("task3.num_epoch=20", "", "", r"task3 has no parameter 'num_epoch'; .* cell sets .*num_epochs"),
        ("task9.x=1", "", "", r"unknown task 'task9' in 'task9.x=1'; the tasks are task2, task3, task4"),
        ("num_epochs=20", "", "", r"PARAMS items look like task4.num_epochs=20, received 'num_epochs=20'"),
        ("task3.num_epochs=abc", "", "", r"task3: Task3Config.num_epochs must be int, received 'abc'"),
        ("task3.learning_rate=[1]", "", "", r"learning_rate must be float, received \[1\]"),
        ("task2.class1=Shirt", "", "", r"class1 must be a class index 0..9 or one of .* for mnist, received 'Shirt'"),
        ("task2.class1=3", "", "", r"class1 and class2 must be two different classes, received 3 and 3"),
        ("task4.lambdas=[]", "", "", r"task4.lambdas must be a non-empty list of different finite .*received \(\)"),
        ("task4.lambdas=[1, -0.1]", "", "", r"lambdas must be a non-empty list of different finite numbers >= 0"),
        ("task3.gradient_check_examples=0", "", "", r"gradient_check_examples must be an integer in \[1, train_size"),
        ("task3.train_size=0", "", "", r"task3.train_size must be an integer in \[1, 60000\] for mnist, received 0"),
        ("task3.train_size=70000", "", "", r"train_size must be an integer in \[1, 60000\]"),
        ("task3.learning_rate=0", "", "", r"learning_rate must be a finite number > 0, received 0"),
        ("task3.learning_rate=inf", "", "", r"learning_rate must be float, received 'inf'"),
        ("task3.num_epochs=0", "", "", r"num_epochs must be an integer in \[1, 100000\], received 0"),
        ("task3.batch_size=30000", "", "", r"batch_size must be an integer in \[1, train_size=20000\]"),
        ("task2.early_stopping_patience=0", "", "", r"early_stopping_patience must be an integer >= 1"),
        ("task4.lambdas=[1, 0.1", "", "", r"PARAMS has an unclosed bracket \(missing '\]'\)"),
        ("task2.class1='Coat", "", "", r"PARAMS has an unclosed '"),
        ("task4.lambdas=[1,,2]", "", "", r"'\[1,,2\]' is not a Python literal"),
        ("", "x", "", r"SEED must be an integer in \[0, 4294967295\], received 'x'"),
        ("", "-1", "", r"SEED must be an integer in \[0, 4294967295\], received '-1'"),
        # what numpy's generators take, checked before any work (RandomState stops at 2**32 - 1)
        ("", "4294967296", "", r"SEED must be an integer in \[0, 4294967295\], received '4294967296'"),
        ("task3.shuffle_seed=99999999999999999999999", "", "",
         r"task3.shuffle_seed must be an integer in \[0, 4294967295\], received 99999999999999999999999$"),
        ("task2.gradient_check_seed=-3", "", "", r"gradient_check_seed must be an integer in \[0, 4294967295\]"),
        # an integer too long for Python to read is called what it is, and not echoed whole
        ("task3.num_epochs=" + "9" * 5000, "", "", r"^task3.num_epochs: an integer of 5000 digits \(9{12}\.\.\.\): no "
         "parameter takes one that large"),
        ("task2.class1=" + "x" * 5000, "", "", r"received 'x{30,40}\.\.\.x+' \(5002 characters\)$"),
        ("", "", "cifar", r"DATASET must be one of mnist, fashion-mnist, synthetic \(empty: mnist\), received 'cifar'"),
    ],
)
def test_bad_parameters_name_the_parameter_value_and_range(params, seed, dataset, match):
    with pytest.raises(ParameterError, match=match):
        resolve(params, seed=seed, dataset=dataset)


def test_the_synthetic_data_set_gets_a_training_size_it_has():
    out = resolve("", dataset="synthetic")
    assert {values["train_size"] for values in out.values()} == {2000}
    with pytest.raises(ParameterError, match=r"train_size must be an integer in \[1, 3000\] for synthetic"):
        resolve("task3.train_size=5000", dataset="synthetic")


def test_an_instructors_target_in_the_student_version_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """The student version leaves out bench/, grading/, tests/build/: its make help does not offer their targets, and
    asking for one says whose it is."""
    from tools import cli
    from tools.common import BuildError

    if (cli.ROOT / "bench").exists():  # the instructor's source
        assert cli.parse_args(["bench"])[0] == ["bench"]
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    for target, part in (("bench", "bench"), ("test-build", "tests/build"), ("grade", "grading")):
        with pytest.raises(BuildError, match=f"^make {target} is the instructor's: this is the student version, "
                                             f"without {part}$"):
            cli.parse_args([target])
    cli.print_help()
    shown = capsys.readouterr().out
    assert "  bench " not in shown and "  report " in shown
    assert ("(the instructor's test-build, student, grade, autograder, release, bench: not in the student "
            "version)") in shown
