"""A report that builds while work is unfinished: a part of a task notebook that runs into a blank is left out and
its tasks listed as pending (experiments.attempt), the answers are read from what is there, and the report's sections
of pending tasks become one line saying what is missing, their headings kept (tools/partial.py)."""

import json

import pytest
from test_answers import course_results

import experiments
from answers import Pending, Task2, Task3
from experiments import Task2Config, attempt, ready, run_task2
from support.blanks import Blank
from tools import partial
from tools.regions import answer_prompt

TINY = dict(dataset="synthetic", train_size=2000, num_epochs=2, num_epochs_early_stopping=3,
            gradient_check_examples=5, shuffle_seed_runs=2)


def blank(task: str, function: str):
    def raising(*args, **kwargs):
        raise NotImplementedError(f"Task {task}: {function} is not written yet")
    return raising


def test_attempt_leaves_out_a_part_that_meets_a_blank_and_lets_any_other_error_through():
    pending = {}
    assert attempt(pending, ["2b", "2c"], blank("2c", "accuracy")) is None
    why = pending["2b"]  # the blank's own words and place
    assert pending == {"2b": why, "2c": why} and why.startswith("Task 2c: accuracy is not written yet (tests/test_")
    with pytest.raises(NotImplementedError, match="something else"):
        attempt(pending, ["2d"], lambda: (_ for _ in ()).throw(NotImplementedError("something else")))
    assert "2d" not in pending


@pytest.mark.finished  # every code of Task 2 but the one blanked here
def test_task2_runs_what_it_can_and_says_what_waits(monkeypatch, capsys):
    monkeypatch.setattr("trainer.should_early_stop", blank("2d", "should_early_stop"))
    out = run_task2(Task2Config.from_notebook(**TINY))
    assert set(out["pending"]) == {"2d", "2e"} and set(out["runs"]) == {"plain"}
    assert "gradient_check" in out and "plain" in out["weights"] and "shuffle_seeds" not in out
    assert ready(out, "2a", "2b") and not ready(out, "2d")
    assert capsys.readouterr().out.startswith("Task 2d is pending: Task 2d: should_early_stop is not written yet "
                                              "(tests/test_partial.py:")


def test_with_nothing_written_every_part_waits(monkeypatch):
    monkeypatch.setattr(experiments, "pre_process_images", blank("2a", "pre_process_images"))
    out = run_task2(Task2Config.from_notebook(**TINY))
    assert set(out["pending"]) == {"2a", "2b", "2c", "2d", "2e"} and out["runs"] == {}
    assert out["data"]["num_train"] > 0  # the sizes come from the raw data


def test_the_answers_are_read_from_what_a_partial_results_file_holds():
    results = course_results()
    t2 = results["task2"]
    for key in ("shuffle_comparison", "shuffle_seeds", "analysis"):
        del t2[key]
    del t2["runs"]["early_stopping_shuffled"]
    t2["pending"] = {"2e": "Task 2e: batch_indices is not written yet (utils.py:87)"}
    answers = Task2(t2, None)
    assert answers.plain.steps and answers.early.stop_epoch
    assert isinstance(answers.shuffled, Pending) and not answers.smoother_than_ever  # JupyterLab shows the mark
    assert answers.shuffled.stop_epoch == "(pending: Task 2e: batch_indices is not written yet (utils.py:87))"
    t3 = results["task3"]
    del t3["runs"]["softmax"], t3["fit"]
    assert not hasattr(Task3(t3, None), "run")


def notebook(*sources):
    return {"cells": [{"cell_type": "code" if s.startswith("t2.") else "markdown", "id": f"c{i}", "metadata": {},
                       "source": s} for i, s in enumerate(sources)], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


REPORT = notebook("# Task 2: logistic regression\n\n## Task 2a: gradient check", "The check {eval}`t2.check`.",
                  "## Task 2b: loss", "t2.figure('loss')", "**Figure 1.** The loss.",
                  "## Task 2c: accuracy", "Accuracy {eval}`t2.accuracy`.",
                  "# Beyond the assignment\n\n## Logistic regression", "t2.figure('weights')",
                  "# Appendix", "Always here.")


def sources(book):
    return ["".join(c["source"]) for c in book["cells"]]


def test_a_pending_section_keeps_its_heading_and_says_what_is_missing():
    left = [Blank("2b", "BaseTrainer.train_step", "trainer.py", 105)]
    pending = {"2b": "Task 2b: BaseTrainer.train_step is not written yet (trainer.py:105)",
               "2c": "Task 2b: BaseTrainer.train_step is not written yet (trainer.py:105)"}
    book = partial.with_placeholders(REPORT, pending, left)
    assert sources(book) == [
        "# Task 2: logistic regression\n\n## Task 2a: gradient check", "The check {eval}`t2.check`.",
        "## Task 2b: loss", "*Pending.* Task 2b, not written yet: BaseTrainer.train_step (trainer.py:105).",
        "## Task 2c: accuracy", "*Pending.* Task 2b: BaseTrainer.train_step is not written yet (trainer.py:105).",
        "# Beyond the assignment\n\n## Logistic regression",  # it shows 2c's results (pyproject.toml's report_needs)
        "*Pending.* Task 2b: BaseTrainer.train_step is not written yet (trainer.py:105).",
        "# Appendix", "Always here."]
    assert partial.with_placeholders(REPORT, {}, left) is REPORT


def test_a_task_that_waits_for_another_says_both():
    left = [Blank("3a", "softmax", "utils.py", 147)]
    assert partial.described("3a", "Task 2a: sigmoid is not written yet (utils.py:141)", left) == (
        "Task 3a, not written yet: softmax (utils.py:147); it waits for Task 2a: sigmoid is not written yet "
        "(utils.py:141)")
    assert partial.described("3b", "Task 3a: softmax is not written yet (utils.py:147)", left) == (
        "Task 3a: softmax is not written yet (utils.py:147)")


def test_an_answer_still_asked_for_counts_as_pending():
    book = notebook("## Task 1a: logistic regression", answer_prompt("1a", "derive it"))
    assert partial.answers_pending(json.loads(json.dumps(book))) == {"1a": "Task 1a: the answer is not written yet"}
    headings = ["Task 1a", "Task 1b", "Task 2a"]
    assert partial.pending_summary({"1a": "", "2a": ""}, headings) == "partial report: 2 of 3 tasks pending (1a, 2a)"
    assert partial.pending_summary({}, headings) == ""
