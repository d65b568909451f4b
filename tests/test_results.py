"""Results files: atomic, carrying their parameters and schema, refused when missing, partial or outdated."""

import os

import numpy as np
import pytest

from experiments import Task2Config, run_task2
from results import (
    SCHEMA_VERSION,
    ResultsError,
    fit_summary,
    image_roughness,
    load_results,
    roughness,
    save_results,
    shuffle_comparison,
    spike_steps,
)

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


# ---------------------------------------------------------------- the summaries the report's prose reads


def history(val_loss, every=6):
    n = len(val_loss)
    return {"check_steps": [i * every for i in range(n)], "val_loss": list(val_loss),
            "val_accuracy": [1 - v for v in val_loss], "train_accuracy": [0.9] * n, "train_set_loss": [0.2] * n}


def test_roughness_and_spikes():
    assert roughness([1, 2, 1, 2]) == 1.0 and roughness([3, 3, 3]) == 0.0
    calm = [0.1 + 0.001 * (i % 2) for i in range(40)]
    spiky = list(calm)
    spiky[10] = spiky[30] = 0.2  # two jumps of about a hundred times the usual change
    assert spike_steps(history(calm)) == []
    assert spike_steps(history(spiky)) == [60, 180]
    out = shuffle_comparison(history(spiky), history(calm), skip_checks=5, steps_per_epoch=60)
    assert out["spikes_plain"] == {"steps": [60, 180], "batch_in_epoch": [0]}
    assert out["val_loss_roughness"]["plain"] > out["val_loss_roughness"]["shuffled"]
    assert out["first_step"] == 30 and out["num_checks"] == 35


def test_fit_summary_reads_the_trend_of_the_validation_loss():
    falling = fit_summary(history(np.linspace(1, 0.5, 60)), tail_checks=10)
    rising = fit_summary(history(np.r_[np.linspace(1, 0.5, 50), np.linspace(0.5, 0.6, 10)]), tail_checks=10)
    assert falling["val_loss_tail_slope"] < 0 < rising["val_loss_tail_slope"]
    assert rising["min_val_loss_step"] == 49 * 6 and rising["final_val_loss"] == 0.6


def test_image_roughness_is_scale_free_and_prefers_smooth_images():
    rng = np.random.default_rng(0)
    noisy = rng.normal(size=(785, 10))
    smooth = np.tile(np.linspace(-1, 1, 28), 28)[:, None].repeat(10, axis=1)
    smooth = np.vstack([smooth, np.zeros((1, 10))])
    assert image_roughness(smooth) < image_roughness(noisy)
    assert image_roughness(noisy) == pytest.approx(image_roughness(5 * noisy))
