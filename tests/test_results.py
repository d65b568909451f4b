"""Results files: atomic, carrying their parameters and schema, refused when missing, partial or outdated."""

import os

import pytest

from experiments import Task2Config, run_task2
from results import SCHEMA_VERSION, ResultsError, load_results, save_results

TINY = Task2Config(dataset="synthetic", train_size=1500, num_epochs=2, num_epochs_early_stopping=4,
                   gradient_check_examples=5)


@pytest.fixture
def sources(tmp_path):
    """A folder standing in for the repository: task2.ipynb and the modules, written before any result."""
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("task2.ipynb", "utils.py", "trainer.py"):
        (folder / name).write_text("")
        os.utime(folder / name, (1_000_000, 1_000_000))
    return folder


def test_results_round_trip_with_parameters_and_schema(tmp_path, sources):
    save_results("task2", {"seed": 3}, {"runs": {"a": [1.5, 2]}}, tmp_path)
    record = load_results("task2", ("runs",), tmp_path, sources)
    assert record["schema"] == SCHEMA_VERSION and record["parameters"] == {"seed": 3}
    assert record["runs"] == {"a": [1.5, 2]} and "numpy" in record["versions"]


def test_same_seed_gives_byte_identical_results_files(tmp_path):
    paths = []
    for run in ("a", "b"):
        out = run_task2(TINY)
        payload = {"runs": {name: r.to_dict() for name, r in out["runs"].items()}, "check": out["gradient_check"]}
        paths.append(save_results("task2", TINY.as_dict(), payload, tmp_path / run))
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    save_results("task2", {}, {"runs": 1}, tmp_path)
    before = (tmp_path / "task2.json").read_bytes()
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        save_results("task2", {}, {"runs": object()}, tmp_path)
    with pytest.raises(ValueError, match="Out of range float values"):
        save_results("task2", {}, {"runs": float("nan")}, tmp_path)
    assert (tmp_path / "task2.json").read_bytes() == before  # the last good file is still there
    assert [p.name for p in tmp_path.iterdir()] == ["task2.json"]  # and no temporary file


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"task2.json is missing: run task2.ipynb again"),
        ('{"schema": 1, "task": "task2", "parameters": {}, "ru', r"is not complete JSON .* run task2.ipynb again"),
        ('{"schema": 0, "task": "task2", "parameters": {}}', r"has schema 0, this code reads schema 1"),
        ('[1, 2]', r"has schema 'list'"),
        ('{"schema": 1, "task": "task2", "parameters": {}}', r"lacks runs: run task2.ipynb again"),
    ],
)
def test_the_report_refuses_unusable_results(tmp_path, sources, content, match):
    if content is not None:
        (tmp_path / "task2.json").write_text(content)
    with pytest.raises(ResultsError, match=match):
        load_results("task2", ("runs",), tmp_path, sources)


def test_results_older_than_their_notebook_or_modules_are_outdated(tmp_path, sources):
    save_results("task2", {}, {"runs": 1}, tmp_path)
    load_results("task2", ("runs",), tmp_path, sources)
    (sources / "trainer.py").write_text("# edited")
    with pytest.raises(ResultsError, match=r"task2.json is outdated: trainer.py changed after it was written"):
        load_results("task2", ("runs",), tmp_path, sources)
