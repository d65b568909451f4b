"""The notebooks: clean in git, parameters that match experiments.py, and a smoke run on synthetic data."""

import ast
import dataclasses
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from experiments import TASK_CONFIGS
from support.export import run_with_answers
from support.handoff import OUT_ENV, RESULTS_ENV, SHARED_ENV, TASK_ENV
from support.inline import render, unevaluated
from support.results import load_results

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["task2.ipynb", "task3.ipynb", "task4.ipynb", "report.ipynb"]
# notebook parameters that do not change results
RUN_ONLY = {"progress", "build_dir", "expected_keys"}


def parameters_cell(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return cells[0]


def parameter_values(path) -> dict:
    """{name: value} of the literal assignments in the notebook's parameters cell."""
    tree = ast.parse(parameters_cell(path).source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_committed_without_outputs(name):
    book = nbformat.read(ROOT / name, as_version=4)
    dirty = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{name}: cells {dirty} carry outputs; clear them before committing"
    assert book.metadata.kernelspec.name == "python3" and book.metadata.kernelspec.language == "python"


@pytest.mark.parametrize("task", sorted(TASK_CONFIGS))
def test_parameters_cells_set_every_field_of_the_configurations(task):
    values = parameter_values(ROOT / f"{task}.ipynb")
    fields = {f.name for f in dataclasses.fields(TASK_CONFIGS[task])}
    assert {k for k in values if k not in RUN_ONLY} == fields
    assert "=" not in "".join(line.partition("#")[2] for line in parameters_cell(ROOT / f"{task}.ipynb").source
                              .splitlines()), "papermill cannot parse a line whose comment holds '='"


SMOKE = {
    "task2": dict(train_size=2000, num_epochs=2, num_epochs_early_stopping=8, early_stopping_patience=3),
    "task3": dict(train_size=1000, num_epochs=2),
    "task4": dict(train_size=1000, num_epochs=2, lambdas=[2.0, 0.02]),
}
FIGURES = {
    "task2": ["loss", "accuracy", "shuffle", "weights", "mistakes"],
    "task3": ["loss", "accuracy", "confusion", "mistakes"],
    "task4": ["weights", "val_accuracy", "norm"],
}


@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory):
    """The three task notebooks and the report, run headless on synthetic data into a temporary build folder."""
    papermill = pytest.importorskip("papermill")
    build = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as env:  # where the build would have the notebooks write (support/handoff.py)
        env.setenv(OUT_ENV, str(build))
        env.setenv(SHARED_ENV, str(build))
        for task, overrides in SMOKE.items():
            env.setenv(TASK_ENV, task)  # which notebook runs (Jupyter tells the kernel the notebook's path)
            params = dict(overrides, dataset="synthetic", gradient_check_examples=10, progress=False)
            papermill.execute_notebook(ROOT / f"{task}.ipynb", build / f"{task}.ipynb", parameters=params,
                                       cwd=str(ROOT), kernel_name="python3", progress_bar=False)
        env.setenv(RESULTS_ENV, str(build / "results"))  # the report reads these, as the build has it
        executed = run_with_answers(nbformat.read(ROOT / "report.ipynb", as_version=4),
                                    {"metadata": {"path": str(ROOT)}}, timeout=600)
        nbformat.write(executed, build / "report.ipynb")
    return build


@pytest.mark.finished  # the report's answers and every task's code, as the source has them
@pytest.mark.notebooks
@pytest.mark.parametrize("task", sorted(SMOKE))
def test_task_notebooks_write_their_figures_and_results(smoke_build, task):
    for name in FIGURES[task]:
        for ext, magic in (("png", b"\x89PNG"),):
            path = smoke_build / "figures" / task / f"{name}.{ext}"
            assert path.read_bytes()[:4] == magic and path.stat().st_size > 1000
    record = load_results(task, ("runs", "gradient_check", "data"), smoke_build / "results")
    config = TASK_CONFIGS[task].from_notebook(**SMOKE[task], dataset="synthetic", gradient_check_examples=10)
    expected = config.as_dict()
    assert record["parameters"] == json.loads(json.dumps(expected))  # tuples come back as lists
    assert record["gradient_check"]["max_abs_difference"] <= 1e-6
    for run in record["runs"].values():
        assert run["num_steps"] == len(run["history"]["train_loss"])
        assert 0.5 < run["final"]["val_accuracy"] <= 1.0  # synthetic digits are easy


@pytest.mark.finished  # the report's answers and every task's code, as the source has them
@pytest.mark.notebooks
def test_task4_trains_each_lambda_once_and_lambda_zero(smoke_build):
    record = json.loads((smoke_build / "results" / "task4.json").read_text())
    assert sorted(record["runs"]) == ["0.0", "0.02", "2.0"]
    norms = record["squared_norms"]
    assert norms["2.0"] < norms["0.02"] < norms["0.0"]


@pytest.mark.finished  # the report's answers and every task's code, as the source has them
@pytest.mark.notebooks
def test_report_shows_figures_and_prose_and_nothing_else(smoke_build):
    """Run as JupyterLab's Run All runs it (code cells, then each Markdown cell's inline expressions), the report's
    code shows the figures and nothing else, and its Markdown holds every value."""
    book = nbformat.read(smoke_build / "report.ipynb", as_version=4)
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert all(o.output_type == "display_data" for o in outputs), "stray stream output or a result in the report"
    images = [o for o in outputs if "image/png" in o.data]
    assert len(images) == sum(len(f) for f in FIGURES.values())
    assert unevaluated(book) == []
    prose = "\n".join(c.source for c in nbformat.from_dict(render(book)).cells if c.cell_type == "markdown")
    for number in range(1, len(images) + 1):
        assert f"**Figure {number}.**" in prose
    assert "training stops in epoch" in prose or "Early stopping did not trigger" in prose
    assert "the course's values throughout" not in prose  # the smoke run changed parameters, and says so
    assert "`num_epochs = 2`" in prose and "{eval}" not in prose


def test_the_notebook_check_fails_on_outputs_and_fixes_them(tmp_path):
    import subprocess
    import sys

    from nbformat.v4 import new_code_cell, new_notebook, new_output

    path = tmp_path / "dirty.ipynb"
    cell = new_code_cell("1 + 1", execution_count=3, outputs=[new_output("execute_result", {"text/plain": "2"},
                                                                         execution_count=3)])
    nbformat.write(new_notebook(cells=[cell]), path)
    script = [sys.executable, "-m", "tools.check_notebooks"]
    proc = subprocess.run([*script, str(path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "dirty.ipynb carry outputs" in proc.stderr, proc.stderr
    fix = proc.stderr.strip().rpartition(": ")[2]  # the remedy, as printed: it works when typed
    assert fix.endswith("-m tools.check_notebooks --fix")
    assert subprocess.run([*script, "--fix", str(path)], capture_output=True, cwd=ROOT).returncode == 0
    assert subprocess.run([*script, str(path)], capture_output=True, cwd=ROOT).returncode == 0
    assert nbformat.read(path, as_version=4).cells[0].outputs == []


def test_the_filter_and_the_check_strip_the_same():
    """The git filter (nbstripout's command line, as .git/config runs it) and the check (its function) agree."""
    import subprocess
    import sys

    from tools.check_notebooks import FILTER_ARGS, stripped

    book = json.loads((ROOT / "task3.ipynb").read_text())
    book["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    for cell in book["cells"]:
        cell["metadata"]["execution"] = {"iopub.status.idle": "2026-11-29T10:00:00Z"}
        if cell["cell_type"] == "markdown":
            cell["metadata"]["user_expressions"] = [{"expression": "1", "result": {"status": "ok"}}]
        else:
            cell["outputs"], cell["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": "x"}], 1
    text = json.dumps(book, indent=1)
    by_filter = subprocess.run([sys.executable, *FILTER_ARGS], input=text, capture_output=True, text=True, check=True)
    assert json.loads(by_filter.stdout) == json.loads(stripped(text)) == json.loads((ROOT / "task3.ipynb").read_text())


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_after_a_save_with_outputs_git_status_shows_the_notebook_unchanged(tmp_path):
    """JupyterLab saves a run notebook with its outputs; the server's save hook (support/jupyter) stages it when what
    git would stage is what is staged already, so `git status` lists it unchanged. A real edit stays modified."""
    import runpy
    import shutil
    import subprocess
    import sys

    from traitlets.config import Config

    from tools.check_notebooks import FILTER_ARGS

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    shutil.copy(ROOT / ".gitattributes", tmp_path)
    shutil.copy(ROOT / "task2.ipynb", tmp_path)
    git("config", "filter.nbstripout.clean", f'"{sys.executable}" ' + " ".join(f'"{a}"' for a in FILTER_ARGS))
    git("config", "filter.nbstripout.smudge", "cat")
    git("add", ".")
    git("-c", "user.name=student", "-c", "user.email=s@example.org", "commit", "-qm", "start")
    hook = runpy.run_path(str(ROOT / "support" / "jupyter" / "jupyter_server_config.py"),
                          init_globals={"load_subconfig": lambda path: None, "get_config": Config})
    book = json.loads((tmp_path / "task2.ipynb").read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            cell.update(execution_count=1, outputs=[nbformat.v4.new_output("stream", text="trained\n")])
    (tmp_path / "task2.ipynb").write_text(json.dumps(book, indent=1))
    assert git("status", "--short") == " M task2.ipynb\n"  # git's size check, before the filter runs
    assert hook["refresh_git_index"](str(tmp_path / "task2.ipynb"))
    assert git("status", "--short") == "" and git("diff", "--cached") == ""
    book["cells"][2]["source"] = "# an edit of the student's\n" + "".join(book["cells"][2]["source"])
    (tmp_path / "task2.ipynb").write_text(json.dumps(book, indent=1))
    assert not hook["refresh_git_index"](str(tmp_path / "task2.ipynb"))
    assert git("status", "--short") == " M task2.ipynb\n" and git("diff", "--cached") == ""
