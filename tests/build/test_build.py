"""The build (make.py) as a user meets it, in a copy of the project whose path has a space, on synthetic data:
whole or not at all under Ctrl-C, two builds and write errors; current by content under touches, Jupyter runs
and hand edits; parameters refused before any work; failing cells shown as themselves."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import (
    AS_ROOT,
    POSIX_SIGNALS,
    SMOKE,
    STRIPPED,
    build_dir,
    edit_cell,
    edit_report,
    make,
    nothing_left_running,
    pdf,
    pdf_text,
    report_kernel_up,
    staged,
    tempfile_dir,
    wait_for,
)

from support.inline import without_marks

pytestmark = pytest.mark.notebooks


def test_a_second_build_with_nothing_changed_runs_nothing_and_a_touch_changes_nothing(project):
    before = pdf(project).read_bytes()
    for name in ("report.ipynb", "task3.ipynb", "utils.py", "trainer.py"):
        (project / name).touch()
    code, output = make(project, "report")
    assert code == 0 and " ran " not in output and "==>" not in output, output
    assert pdf(project).read_bytes() == before


def test_a_prose_edit_reruns_only_the_report(project):
    path = project / "report.ipynb"
    before = path.read_bytes()
    book = json.loads(before)  # edited as JSON, as a script or an older tool would: the cell has no id
    book["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "A sentence the student just wrote."})
    path.write_text(json.dumps(book, indent=1))
    try:
        code, output = make(project, "report")
        assert code == 0 and "Warning" not in output, output
        assert "report.ipynb" in output and "task" not in output.replace("tasks", ""), output
        assert "A sentence the student just wrote." in pdf_text(pdf(project))
    finally:
        path.write_bytes(before)


def edit_answer(folder, starts, old, new):
    """Replace `old` by `new` in the Markdown cell of report.ipynb whose text (after any branch mark) starts with
    `starts`, as a student edits it; return a function that takes it back."""
    return edit_cell(folder / "report.ipynb", lambda c: c["cell_type"] == "markdown" and re.sub(
        r"^\{eval\}`when\([^`]*\)`\s*", "", without_marks("".join(c["source"]))).startswith(starts), old, new)


def test_rewording_the_3d_answer_rebuilds_through_the_prose_path_without_a_kernel(project):
    date = {"SOURCE_DATE_EPOCH": "1000000000"}  # the PDF's date: the same bytes for the same report
    assert make(project, "report", extra_env=date)[0] == 0
    before = pdf(project).read_bytes()
    restore = edit_answer(project, "We call it overfitting", "We call it overfitting when",
                          "In other words: we call it overfitting when")
    try:
        code, output = make(project, "report", extra_env=date)
        assert code == 0 and "report.ipynb (prose)" in output and " ran " not in output, output
        assert "In other words: we call it overfitting" in " ".join(pdf_text(pdf(project)).split())
    finally:
        restore()
    code, output = make(project, "report", extra_env=date)
    assert code == 0 and pdf(project).read_bytes() == before, output  # undone: the same PDF


def test_a_new_value_in_an_answer_runs_the_report_and_shows_the_value(project):
    restore = edit_answer(project, "The numbers that decide it", "The numbers that decide it",
                          "With {eval}`t3.num_val` validation images, the numbers that decide it")
    try:
        code, output = make(project, "report")
        assert code == 0 and "report.ipynb (prose)" not in output and "report.ipynb" in output, output
        assert "With 1,000 validation images, the numbers that decide it" in " ".join(pdf_text(pdf(project)).split())
        restore()
        typo = edit_answer(project, "The numbers that decide it", "{eval}`t3.gap`", "{eval}`t3.gapp`")
        code, output = make(project, "report")
        assert code == 1 and "the expression {eval}`t3.gapp` failed: AttributeError" in output, output
        assert "Traceback" not in output, output
        typo()
    finally:
        restore()
    assert make(project, "report")[0] == 0


@POSIX_SIGNALS
def test_ctrl_c_during_the_report_keeps_the_last_pdf_and_the_next_build_is_whole(project):
    before = pdf(project).read_bytes()
    # the code cell keeps the report running for seconds: a prose edit alone can be done before a poll sees it
    restore = edit_report(project, "Written after the interrupt.", code="import time\ntime.sleep(2)")
    try:
        proc = make(project, "report", wait=False)
        wait_for(staged(project, "report."))
        wait_for(lambda: report_kernel_up(project))
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output
        assert "interrupted" in output and "failed" not in output and "Traceback" not in output, output
        assert "report-synthetic.pdf is the last good one" in output
        assert pdf(project).read_bytes() == before
        nothing_left_running(project)
        assert not (build_dir(project) / ".staging").exists() or not list((build_dir(project) / ".staging").iterdir())
        code, output = make(project, "report")
        assert code == 0, output
        assert "Written after the interrupt." in pdf_text(pdf(project))
    finally:
        restore()
    assert make(project, "report")[0] == 0


@POSIX_SIGNALS
@pytest.mark.parametrize("stop", [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)])
def test_ctrl_c_during_a_task_notebook_says_interrupted_and_keeps_its_results(project, tmp_path, stop):
    """Ctrl-C (SIGINT), a kill (SIGTERM) or a closed terminal (SIGHUP) to the build and all its processes."""
    results = build_dir(project) / "results" / "task3.json"
    before = results.read_bytes()
    proc = make(project, "report", params=SMOKE.replace("task3.num_epochs=2", "task3.num_epochs=3"), wait=False,
                extra_env={"TMPDIR": str(tmp_path)})  # where the runners keep their kernels' sockets
    wait_for(staged(project, "task3."))
    wait_for(lambda: report_kernel_up(project))  # only Task 3 runs: the report's runner starts beside it and waits
    time.sleep(1.0)  # its kernel has answered: the runner waits for its parameters
    os.killpg(proc.pid, getattr(signal, stop))
    interrupted = time.monotonic()
    output, _ = proc.communicate(timeout=120)
    assert time.monotonic() - interrupted < 8, "a runner kept the build waiting after Ctrl-C"
    assert proc.returncode == 130 and "interrupted" in output, output
    assert "failed" not in output and "traceback above" not in output, output
    assert results.read_bytes() == before
    nothing_left_running(project)  # Task 3's runner and kernel, and the report's runner that waited beside it
    assert not list(tmp_path.iterdir())  # nor their folders


def test_two_builds_at_once_wait_for_each_other_and_both_end_whole(project):
    restore = edit_report(project, "Two builds at once.")
    try:
        first = make(project, "report", wait=False)
        wait_for(lambda: (build_dir(project) / ".lock.owner").exists()
                 and (build_dir(project) / ".lock.owner").read_text() == str(first.pid))
        second = make(project, "report", wait=False)
        out_second, _ = second.communicate(timeout=600)
        out_first, _ = first.communicate(timeout=600)
        assert first.returncode == 0 and second.returncode == 0, out_first + out_second
        assert f"another build is running in {build_dir(project)} (pid {first.pid}); waiting" in out_second
        assert re.search(r"the other build finished after \d+ s; this one starts now", out_second), out_second
        own = int(re.search(r"^report: .* \((\d+) s\)$", out_second, re.MULTILINE)[1])
        assert own <= 3, out_second  # nothing left to do once the first is done: the wait is not counted
        assert "Two builds at once." in pdf_text(pdf(project))
    finally:
        restore()


def test_a_jupyter_run_with_other_parameters_cannot_pass_for_the_builds_run(project, monkeypatch):
    import papermill

    results = build_dir(project) / "results" / "task3.json"
    params = json.loads(results.read_text())["parameters"]
    other = tempfile_dir(project) / "x.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(project / "task3.ipynb"))  # what Jupyter tells a notebook's kernel
    papermill.execute_notebook(project / "task3.ipynb", other, cwd=str(project), kernel_name="python3",
                               progress_bar=False, parameters={**params, "num_epochs": 3, "progress": False})
    assert json.loads(results.read_text())["parameters"]["num_epochs"] == 3  # the Jupyter run wrote its results
    code, output = make(project, "report")
    assert code == 0 and "task3.ipynb ran (" in output and "other parameters" in output, output
    assert json.loads(results.read_text())["parameters"]["num_epochs"] == 2


@pytest.mark.parametrize("damage", ["edited", "truncated", "deleted figure"])
def test_damaged_results_are_rerun_by_the_build_itself(project, damage):
    results = build_dir(project) / "results" / "task2.json"
    if damage == "edited":
        record = json.loads(results.read_text())
        record["fit"]["final_val_accuracy"] = 0.5555
        results.write_text(json.dumps(record, indent=1))
    elif damage == "truncated":
        results.write_text(results.read_text()[:200])
    else:
        (build_dir(project) / "figures" / "task2" / "loss.png").unlink()
    code, output = make(project, "report")
    assert code == 0 and "task2.ipynb ran" in output, output
    assert "0.5555" not in results.read_text() and "55.55%" not in pdf_text(pdf(project))


@pytest.mark.parametrize(
    ("args", "params", "message"),
    [
        (("report",), "task4.lambdas=[]", "error: task4.lambdas must be a non-empty list of different finite numbers"),
        (("report",), "task3.gradient_check_examples=0", "error: task3.gradient_check_examples must be an integer"),
        (("report",), "task4.lambdas=[1, 0.1", "error: PARAMS has an unclosed bracket"),
        (("report", "SEED=-1"), "", "error: SEED must be an integer in [0, 4294967295], received '-1'"),
        (("report", "PDF_ENGINE=word"), "", "error: PDF_ENGINE must be one of auto, latex, typst, received 'word'"),
        (("reprot",), "", "error: unknown target 'reprot'; `python make.py help` lists them"),
    ],
)
def test_bad_parameters_stop_before_any_work_with_one_line(project, args, params, message):
    stamp = (build_dir(project) / "results" / "task4.json").stat().st_mtime_ns
    code, output = make(project, *args, params=params)
    assert code != 0 and message in output and "Traceback" not in output, output
    assert len(output.strip().splitlines()) == 1, output
    assert (build_dir(project) / "results" / "task4.json").stat().st_mtime_ns == stamp


def test_the_pdf_is_dated_by_source_date_epoch_and_is_the_same_bytes_when_built_again(project):
    date = {"SOURCE_DATE_EPOCH": "1000000000"}  # 2001-09-09 01:46:40 UTC
    code, output = make(project, "report", extra_env=date)
    assert code == 0 and "PDF through" in output, output  # another date: another PDF
    first = pdf(project).read_bytes()
    assert "September 9, 2001" in pdf_text(pdf(project))
    (build_dir(project) / "pdf" / f"{pdf(project).name}.state.json").unlink()
    code, output = make(project, "report", extra_env=date)
    assert code == 0 and "PDF through" in output, output
    assert pdf(project).read_bytes() == first
    for wrong in ("yesterday", "-5", "99999999999999"):  # the last: the year 3170843
        code, output = make(project, "report", extra_env={"SOURCE_DATE_EPOCH": wrong})
        assert code != 0 and len(output.strip().splitlines()) == 1, output
        assert "error: SOURCE_DATE_EPOCH must be whole seconds since 1970" in output and repr(wrong) in output, output
    code, output = make(project, "report")  # without it: dated today
    assert code == 0 and "September 9, 2001" not in pdf_text(pdf(project)), output


def test_a_failing_cell_shows_that_cell_and_its_traceback_and_keeps_the_last_results(project):
    results = build_dir(project) / "results" / "task2.json"
    before, pdf_before = results.read_bytes(), pdf(project).read_bytes()
    # 300 training images hold about 60 twos and threes: fewer than one batch of 128
    code, output = make(project, "report", params=SMOKE.replace("task2.train_size=2000", "task2.train_size=300"))
    assert code == 1, output
    assert "task2.ipynb failed" in output and "this cell failed" in output
    assert "out = run_task2(config, progress=progress)" in output  # the cell
    assert "ValueError: batch_size must be an integer in [1," in output  # its traceback
    assert "papermill" not in output.lower(), output
    assert results.read_bytes() == before and pdf(project).read_bytes() == pdf_before


def test_the_report_refuses_results_the_build_did_not_ask_for(project, monkeypatch):
    """Run by hand (as Jupyter would), the report told make's expected keys refuses other results."""
    import nbformat

    from support.export import run_with_answers
    from support.handoff import KEYS_ENV, RESULTS_ENV
    from support.inline import ExpressionError

    keys = {t: json.loads((build_dir(project) / "results" / f"{t}.json").read_text())["fingerprint"]["key"]
            for t in ("task2", "task3", "task4")}
    keys["task3"] = "0" * 64
    monkeypatch.setenv(RESULTS_ENV, str(build_dir(project) / "results"))  # what the build tells the report's kernel
    monkeypatch.setenv(KEYS_ENV, json.dumps(keys))
    with pytest.raises(ExpressionError, match="made with other parameters than this build"):
        run_with_answers(nbformat.read(project / "report.ipynb", as_version=4), {"metadata": {"path": str(project)}},
                         timeout=120)


@AS_ROOT
def test_a_full_disk_ends_the_build_with_one_line_and_keeps_the_last_pdf(project):
    staging = build_dir(project) / ".staging"
    staging.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(staging)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    restore = edit_report(project, "Not enough room for this.")
    try:
        before = pdf(project).read_bytes()
        code, output = make(project, "report")
        assert code == 1 and "No space left on device" in output and "Traceback" not in output, output
        assert "the last good outputs are kept" in output
        assert pdf(project).read_bytes() == before
    finally:
        subprocess.run(["umount", str(staging)])
        restore()
    assert make(project, "report")[0] == 0


@pytest.mark.skipif(shutil.which("xelatex") is None, reason="needs xelatex (make tex)")
def test_a_latex_error_shows_the_log_lines_and_keeps_the_last_pdf(project):
    restore = edit_report(project, "A formula with a typo: $\\frac{1}{2} \\lamda w$.")
    try:
        before = pdf(project).read_bytes()
        code, output = make(project, "report", "PDF_ENGINE=latex")
        assert code == 1 and "xelatex failed" in output and "! Undefined control sequence" in output, output
        assert "full log:" in output
        assert pdf(project).read_bytes() == before
    finally:
        restore()


def test_without_tex_the_pdf_comes_through_typst_and_says_so(project):
    """PDF_ENGINE=auto on a machine without xelatex (PATH without it, AUTO_INSTALL=no) builds through Typst."""
    restore = edit_report(project, "Built without TeX.")
    bare = tempfile_dir(project) / "bin"
    bare.mkdir(exist_ok=True)
    try:
        env = {"PATH": str(bare) + os.pathsep + os.path.dirname(sys.executable), "AUTO_INSTALL": "no"}
        code, output = make(project, "report", "PDF_ENGINE=auto", "AUTO_INSTALL=no", extra_env=env)
        assert code == 0, output
        assert "PDF through Typst" in output and "for the LaTeX route install TeX Live" in output
        assert "Built without TeX." in pdf_text(pdf(project))
    finally:
        restore()


def test_submission_is_the_pdf_and_a_zip_of_its_code_whose_tests_pass_elsewhere(project, tmp_path):
    import zipfile

    code, output = make(project, "submission")
    assert code == 0 and "Hand in these two files:" in output and "report-synthetic.pdf" in output, output
    archive = project / "assignment_code.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert {"utils.py", "trainer.py", "task2.ipynb", "report.ipynb", "requirements.lock", "README.md"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in (".venv", "data", "build", ".git", "__pycache__")
                or n.endswith((".pdf", ".png", ".zip"))], names
    code, output = make(project, "submission")
    assert code == 0 and " ran " not in output, output  # nothing reruns when the PDF is up to date
    unpacked = tmp_path / "unpacked here"
    zipfile.ZipFile(archive).extractall(unpacked)
    for name in ("task2.ipynb", "task3.ipynb", "task4.ipynb"):
        book = json.loads((unpacked / name).read_text())
        assert all(not c.get("outputs") for c in book["cells"] if c["cell_type"] == "code")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not notebooks"],
                          cwd=unpacked, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k not in STRIPPED})
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
