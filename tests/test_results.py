"""Results files: atomic, sealed, fingerprinted; refused when missing, partial, altered, outdated or not asked for."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from experiments import Task2Config, run_task2
from support import handoff
from support.results import SCHEMA_VERSION, ResultsError, fingerprint, load_results, save_results
from support.sources import project_modules

ROOT = Path(__file__).resolve().parent.parent
TINY = Task2Config.from_notebook(dataset="synthetic", train_size=1500, num_epochs=2, num_epochs_early_stopping=4,
                   gradient_check_examples=5)


@pytest.fixture
def sources(tmp_path):
    """A folder standing in for the repository: task2.ipynb and the modules it imports, as the repository has them."""
    folder = tmp_path / "src"
    folder.mkdir()
    for path in (ROOT / "task2.ipynb", *project_modules(ROOT / "task2.ipynb")):
        name = path.relative_to(ROOT)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
    return folder


def test_results_round_trip_with_parameters_schema_and_fingerprint(tmp_path, sources):
    save_results("task2", {"seed": 3}, {"runs": {"a": [1.5, 2]}}, tmp_path, sources)
    record = load_results("task2", ("runs",), tmp_path, sources)
    assert record["schema"] == SCHEMA_VERSION and record["parameters"] == {"seed": 3}
    assert record["runs"] == {"a": [1.5, 2]} and "numpy" in record["fingerprint"]["versions"]
    assert record["fingerprint"] == fingerprint("task2", {"seed": 3}, sources)


@pytest.mark.finished  # whole runs: every task's code
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


REMEDY = r"task2.ipynb must run again: `make report` \(or `python make.py report`\) runs it again"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"task2.json is missing: " + REMEDY),
        ('{"schema": 2, "task": "task2", "parameters": {}, "ru', r"is not complete JSON .*: " + REMEDY),
        ('{"schema": 0, "task": "task2", "parameters": {}}', r"has schema 0, this code reads schema 2"),
        ('[1, 2]', r"has schema 'list'"),
        ('{"schema": 2, "task": "task2", "parameters": {}}', r"was altered after its notebook wrote it"),
    ],
)
def test_the_report_refuses_unusable_results(tmp_path, sources, content, match):
    if content is not None:
        (tmp_path / "task2.json").write_text(content)
    with pytest.raises(ResultsError, match=match):
        load_results("task2", ("runs",), tmp_path, sources)


def test_a_results_file_edited_by_hand_is_refused(tmp_path, sources):
    path = save_results("task2", {}, {"runs": {"val_accuracy": 0.9148}}, tmp_path, sources)
    path.write_text(path.read_text().replace("0.9148", "0.5555"))
    with pytest.raises(ResultsError, match=r"task2.json was altered after its notebook wrote it"):
        load_results("task2", ("runs",), tmp_path, sources)


def test_a_missing_key_is_named(tmp_path, sources):
    save_results("task2", {}, {"runs": 1}, tmp_path, sources)
    with pytest.raises(ResultsError, match=r"lacks fit: " + REMEDY):
        load_results("task2", ("runs", "fit"), tmp_path, sources)


def test_results_of_other_code_or_other_parameters_are_refused(tmp_path, sources):
    save_results("task2", {"num_epochs": 5}, {"runs": 1}, tmp_path, sources)
    key = fingerprint("task2", {"num_epochs": 5}, sources)["key"]
    load_results("task2", ("runs",), tmp_path, sources, expected_key=key)
    other = fingerprint("task2", {"num_epochs": 50}, sources)["key"]
    with pytest.raises(ResultsError, match=r"made with other parameters than this build asks for \(num_epochs = 5 "
                                           r"where it asks for 50; a run from Jupyter\?\): task2.ipynb must run again"):
        load_results("task2", ("runs",), tmp_path, sources, expected_key=other, expected_parameters={"num_epochs": 50})
    (sources / "trainer.py").write_text("# edited")
    with pytest.raises(ResultsError, match=r"task2.json is outdated: its modules changed since it was written"):
        load_results("task2", ("runs",), tmp_path, sources)


def test_touching_a_file_or_saving_outputs_changes_no_fingerprint(tmp_path, sources):
    before = fingerprint("task2", {}, sources)
    (sources / "utils.py").touch()
    book = json.loads((sources / "task2.ipynb").read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":  # what a run in Jupyter saves: outputs and counts
            cell["outputs"], cell["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": "x"}], 7
    (sources / "task2.ipynb").write_text(json.dumps(book))
    assert fingerprint("task2", {}, sources) == before
    book["cells"][-1]["source"] = "print('changed')"
    (sources / "task2.ipynb").write_text(json.dumps(book))
    assert fingerprint("task2", {}, sources)["notebook"] != before["notebook"]


def test_an_edit_of_any_module_the_notebook_imports_at_any_depth_changes_its_fingerprint(sources):
    before = fingerprint("task2", {}, sources)
    imported = sorted(p.relative_to(sources).as_posix() for p in project_modules(sources / "task2.ipynb", root=sources))
    assert {"utils.py", "trainer.py", "experiments.py", "support/engine.py"} <= set(imported)  # utils: at depth 2
    for name in imported:
        original = (sources / name).read_text()
        (sources / name).write_text(original + "\n# edited\n")
        assert fingerprint("task2", {}, sources)["modules"] != before["modules"], name
        (sources / name).write_text(original)
    assert fingerprint("task2", {}, sources) == before


def test_a_module_added_to_the_notebooks_imports_is_fingerprinted_without_editing_a_list(sources):
    (sources / "helpers.py").write_text("SCALE = 2\n")
    (sources / "support" / "extra.py").write_text("import helpers\n")
    before = fingerprint("task2", {}, sources)
    (sources / "helpers.py").write_text("SCALE = 3\n")
    assert fingerprint("task2", {}, sources) == before  # not imported yet: it does not count
    book = json.loads((sources / "task2.ipynb").read_text())
    book["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                          "source": "def scale():\n    from support import extra\n    return extra"})
    (sources / "task2.ipynb").write_text(json.dumps(book))
    with_import = fingerprint("task2", {}, sources)
    (sources / "helpers.py").write_text("SCALE = 4\n")  # imported through support/extra.py, inside a function
    assert fingerprint("task2", {}, sources)["modules"] != with_import["modules"]


def test_a_replaced_figure_is_refused(tmp_path, sources):
    figures = tmp_path / "figures" / "task2"
    figures.mkdir(parents=True)
    (figures / "loss.png").write_bytes(b"the figure of this run")
    save_results("task2", {}, {"runs": 1}, tmp_path / "results", sources)
    assert load_results("task2", ("runs",), tmp_path / "results", sources)["figures"].keys() == {"loss.png"}
    (figures / "loss.png").write_bytes(b"a figure of another run")
    with pytest.raises(ResultsError, match=r"task2/loss.png is missing or not the figure of"):
        load_results("task2", ("runs",), tmp_path / "results", sources)


def test_a_results_file_that_is_not_utf8_is_not_usable(tmp_path, sources):
    (tmp_path / "task2.json").write_bytes(b"\xff\xfe\x00 damaged")
    with pytest.raises(ResultsError, match=r"task2.json is not complete JSON .*: " + REMEDY):
        load_results("task2", ("runs",), tmp_path, sources)


@pytest.mark.skipif(not hasattr(os, "umask") or os.name == "nt", reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_umasks_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save_results("task2", {}, {"runs": 1}, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_notebook_caught_half_written_is_read_again_and_else_named_in_one_line(tmp_path):
    """A save written in place (`cp`, many editors) can be caught with half its bytes: read again after a short wait;
    a file that stays broken is named, with what to do."""
    import threading

    from support.sources import NotebookError, read_notebook

    whole = (ROOT / "task3.ipynb").read_bytes()
    path = tmp_path / "task3.ipynb"
    path.write_bytes(whole[:2000])
    threading.Timer(0.2, path.write_bytes, (whole,)).start()  # the save completes
    assert read_notebook(path) == json.loads(whole)
    for broken in (whole[:2000], b"", b'{"no": "cells"}'):
        path.write_bytes(broken)
        with pytest.raises(NotebookError, match=r"^task3.ipynb does not read as a notebook \(.*\): a save caught "
                                                r"half-way, or a damaged file\? Save it again"):
            read_notebook(path)


def test_a_run_names_only_the_figures_it_draws(tmp_path, monkeypatch, sources):
    """A part left pending in Jupyter draws no figure: the earlier run's figure must not pass for this run's."""
    monkeypatch.setenv(handoff.OUT_ENV, str(tmp_path))
    figures = tmp_path / "figures" / "task2"
    figures.mkdir(parents=True)
    (figures / "loss.png").write_bytes(b"an earlier run's figure")
    figures_dir, results_dir = handoff.task_dirs("task2", "synthetic")
    assert (figures_dir, results_dir) == (figures, tmp_path / "results") and not any(figures.iterdir())
    (figures / "accuracy.png").write_bytes(b"this run's figure")
    record = json.loads(save_results("task2", {}, {"pending": {"2b": "..."}}, results_dir, sources).read_text())
    assert list(record["figures"]) == ["accuracy.png"]
