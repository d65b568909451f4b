"""Trust, second round: what a hostile new user does to the build, and what they get. Each test is a row of the
README's "What happens when" table."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import (
    AS_ROOT,
    SMOKE,
    STRIPPED,
    build_dir,
    edit_report,
    make,
    nothing_left_running,
    pdf,
    pdf_text,
    processes_in,
    report_kernel_up,
    staged,
    tempfile_dir,
    wait_for,
)

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[2]
OTHER_SEED = SMOKE.replace("task3.num_epochs=2", "task3.num_epochs=2 task3.shuffle_seed=7")  # Task 3 runs again


def test_a_save_of_the_report_during_the_build_is_in_this_pdf_or_the_next(project):
    """The report's runner starts while a task notebook still runs; the student saves report.ipynb just then."""
    restore = None
    try:
        proc = make(project, "report", params=OTHER_SEED, wait=False)
        wait_for(staged(project, "task3."))
        wait_for(lambda: report_kernel_up(project))  # its runner is up, beside Task 3
        restore = edit_report(project, "Saved while Task 3 was training.", code="SAVED_DURING = 1")
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
        code, second = make(project, "report", params=OTHER_SEED)
        assert code == 0, second
        assert "Saved while Task 3 was training." in pdf_text(pdf(project))  # in this PDF, or else in the next
        code, third = make(project, "report", params=OTHER_SEED)
        assert code == 0 and " ran" not in third and "==>" not in third, third  # and then current
    finally:
        if restore:
            restore()
    assert make(project, "report")[0] == 0


def test_an_edited_executed_report_is_run_again_never_typeset(project):
    executed = build_dir(project) / "notebooks" / "report.ipynb"
    text, count = re.subn(r"\b\d{1,2}\.\d\d%", "99.99%", executed.read_text(), count=1)
    assert count == 1 and "99.99%" not in pdf_text(pdf(project))
    executed.write_text(text)
    for engine in ("PDF_ENGINE=typst", "PDF_ENGINE=auto", "PDF_ENGINE=typst"):
        code, output = make(project, "report", engine)
        assert code == 0, output
        assert "99.99%" not in pdf_text(pdf(project))
    assert make(project, "check-report")[0] == 0


def test_a_course_value_changed_in_the_notebook_is_listed_and_no_like_for_like_claim_is_made(tmp_path):
    """The course's values are held apart from the defaults (the notebook's parameters cell): a default changed
    there differs from the course's, whatever the cell now says."""
    from experiments import COURSE_2022, Task2Config

    book = json.loads((ROOT / "task2.ipynb").read_text())
    cell = next(c for c in book["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = "".join(cell["source"]).replace("learning_rate = 0.05", "learning_rate = 0.1")
    (tmp_path / "task2.ipynb").write_text(json.dumps(book))
    edited = Task2Config.from_notebook(tmp_path / "task2.ipynb")
    assert edited.changed() == {"learning_rate": 0.1} and not edited.as_course()
    assert Task2Config.from_notebook().as_course() and COURSE_2022["task2"]["learning_rate"] == 0.05


@pytest.mark.parametrize("target", ["report.ipynb", "build/synthetic/results/task2.json", "build", "utils.py",
                                    "report-synthetic.pdf.part", "a folder.pdf", "README.pdf"])
def test_an_output_path_that_is_a_source_results_or_a_folder_is_refused_before_any_work(project, target):
    path = project / target
    if target == "a folder.pdf":
        path.mkdir(exist_ok=True)
    if target == "README.pdf":  # a file that is no PDF, named like one
        path.write_text("notes")
    before = path.read_bytes() if path.is_file() else None
    code, output = make(project, "report", f"PDF={path}")
    assert code != 0 and f"PDF={path}" in output and "Nothing was run" in output, output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
    assert before is None or path.read_bytes() == before


def test_a_jupyter_run_saved_in_a_task_notebook_leaves_the_hand_in_working(project):
    """Outputs, execution times and a Markdown note saved into task3.ipynb: nothing that counts changed."""
    path = project / "task3.ipynb"
    before = path.read_bytes()
    book = json.loads(before)
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["a run in Jupyter\n"]}]
            cell["execution_count"] = 3
            cell["metadata"]["execution"] = {"iopub.execute_input": "2026-11-29T10:00:00.000Z"}
    book["cells"].append({"cell_type": "markdown", "id": "note", "metadata": {}, "source": ["A note to myself."]})
    book["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    book["cells"][-1]["metadata"]["user_expressions"] = [{"expression": "1", "result": {"status": "ok"}}]
    path.write_text(json.dumps(book, indent=1))
    (project / "task3-Copy1.ipynb").write_bytes(before)  # Jupyter's File > Duplicate
    try:
        code, output = make(project, "submission")
        assert code == 0 and "Hand in these two files:" in output, output
        assert "Left out of assignment_code.zip: task3-Copy1.ipynb" in output, output
        packed = zipfile.ZipFile(project / "assignment_code.zip")
        assert "task3-Copy1.ipynb" not in packed.namelist()
        packed_book = json.loads(packed.read("task3.ipynb"))
        cells = packed_book["cells"]
        assert "language_info" not in packed_book["metadata"]  # as git stages it (make lint's check)
        assert all("user_expressions" not in c["metadata"] for c in cells)
        assert all(not c.get("outputs") and not c.get("execution_count") and "execution" not in c["metadata"]
                   for c in cells if c["cell_type"] == "code")
    finally:
        path.write_bytes(before)
        (project / "task3-Copy1.ipynb").unlink()


def test_clean_while_a_build_runs_waits_for_it(project):
    proc = make(project, "report", params=OTHER_SEED, wait=False)
    wait_for(staged(project, "task3."))
    code, cleaned = make(project, "clean")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in output, output
    assert code == 0 and "clean waits for it to finish" in cleaned and "removed build" in cleaned, cleaned
    assert not (project / "build").exists()
    assert make(project, "report")[0] == 0


@AS_ROOT
def test_a_read_only_checkout_gets_one_line_naming_the_path_and_the_variables_that_build_elsewhere(project):
    mounted = tempfile_dir(project) / "read-only copy"
    mounted.mkdir(exist_ok=True)
    subprocess.run(["mount", "--bind", str(project), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], check=True)
        code, output = make(mounted, "report", "PARAMS=task3.num_epochs=3")
        assert code != 0 and "Traceback" not in output and len(output.strip().splitlines()) == 1, output
        assert "Read-only file system" in output and "PY=" in output and "BUILD_DIR=" in output, output
    finally:
        subprocess.run(["umount", str(mounted)])


def test_a_results_file_that_is_not_utf8_is_not_usable_and_the_task_runs_again(project):
    results = build_dir(project) / "results" / "task2.json"
    results.write_bytes(b"\xff\xfe\x00 not a results file")
    code, output = make(project, "report")
    assert code == 0 and "task2.ipynb ran" in output and "Traceback" not in output, output


def _old_pythons() -> list[str]:
    """Pythons older than 3.11 on this machine (pyenv's versions; a shim would only complain)."""
    found = [shutil.which(name) for name in ("python2.7", "python3.6", "python3.8", "python3.10")]
    found = [p for p in found if p and "shims" not in Path(p).parts]
    pyenv = Path.home() / ".pyenv" / "versions"
    found += [str(p / "bin" / "python") for p in sorted(pyenv.glob("*")) if p.name.startswith(("2.", "3.6", "3.7",
                                                                                                "3.8", "3.9", "3.10"))]
    return sorted({p for p in found if Path(p).exists()})


@pytest.mark.parametrize("python", _old_pythons() or [pytest.param(None, marks=pytest.mark.skip("no old Python"))])
def test_an_old_python_is_told_what_the_build_needs_in_one_line(python):
    proc = subprocess.run([python, str(ROOT / "make.py"), "report"], capture_output=True, text=True)
    assert proc.returncode == 2 and "this build needs Python >= 3.11" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@AS_ROOT
def test_a_full_disk_in_the_pdf_step_names_the_file(project):
    room = tempfile_dir(project) / "small disk"
    room.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(room)], check=True)
    try:
        restore = edit_report(project, "A PDF with no room.")
        try:
            code, output = make(project, "report", f"PDF={room / 'report.pdf'}")
        finally:
            restore()
        assert code == 1 and "No space left on device" in output and str(room / "report.pdf") in output, output
        assert "Traceback" not in output
    finally:
        subprocess.run(["umount", str(room)])


def test_a_test_that_needs_a_tool_skips_where_it_is_absent(tmp_path):
    """With only python3 on PATH (no mount), the tests that mount skip instead of failing."""
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-m", "build",
                           "tests/build/test_build_trust.py::test_a_full_disk_in_the_pdf_step_names_the_file",
                           "tests/build/test_build.py::test_a_full_disk_ends_the_build_with_one_line_and_keeps_the_last_pdf"],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if k not in STRIPPED}, "PATH": str(bare)})
    assert proc.returncode == 0 and "2 skipped" in proc.stdout, proc.stdout[-2000:]


def test_check_report_refuses_a_pdf_of_other_parameters(project):
    code, output = make(project, "check-report", "SEED=3")
    assert code != 0 and "made with other parameters" in output, output
    assert make(project, "check-report")[0] == 0


def test_a_syntax_error_in_a_module_is_one_short_message(project):
    path = project / "utils.py"
    before = path.read_text()
    path.write_text(before.replace("def sigmoid(", "def sigmoid((", 1))
    try:
        code, output = make(project, "report")
    finally:
        path.write_text(before)
    assert code == 1 and "utils.py" in output and "SyntaxError" in output, output
    assert len(output.strip().splitlines()) <= 6 and "tools/" not in output, output


@pytest.mark.skipif(shutil.which("xelatex") is None, reason="needs xelatex (make tex)")
def test_characters_the_latex_font_lacks_are_named_not_dropped_silently(project):
    restore = edit_report(project, "Done \u2713, \u65e5\u672c.")
    try:
        code, output = make(project, "report", "PDF_ENGINE=latex")
    finally:
        restore()
    assert code == 0 and "has no glyph for" in output and "\u2713" in output and "PDF_ENGINE=typst" in output, output


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX processes")
def test_a_build_killed_hard_leaves_no_runner_training(project):
    # Task 3 set to train for minutes (no early stopping): a runner that outlived the build would still be training
    # long after the deadline below
    long_task3 = "task3.num_epochs=3000 task3.early_stopping_patience=None task3.train_size=3000"
    proc = make(project, "report", params=SMOKE.replace("task3.train_size=600 task3.num_epochs=2", long_task3),
                wait=False)
    wait_for(staged(project, "task3."))
    wait_for(lambda: report_kernel_up(project))
    assert any("task3" in line for line in processes_in(project))  # Task 3's runner is training now
    os.kill(proc.pid, signal.SIGKILL)  # the build alone: its runners are left without it
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while processes_in(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_in(project), processes_in(project)
    nothing_left_running(project)
    shutil.rmtree(build_dir(project) / ".staging", ignore_errors=True)
    assert make(project, "report")[0] == 0


def test_parameters_given_twice_or_repeated_lambdas_are_refused(project):
    code, output = make(project, "params", params="task3.num_epochs=3 task3.num_epochs=4")
    assert code != 0 and "PARAMS sets task3.num_epochs twice" in output, output
    code, output = make(project, "params", params="task4.lambdas=[2, 2.0]")
    assert code != 0 and "task4.lambdas must be a non-empty list of different" in output, output


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_f_from_another_folder_finds_make_py(project, tmp_path):
    linked = tmp_path / "course-folder"  # make cannot take a makefile path with spaces; the project's has some
    linked.symlink_to(project)
    command = ["make", "-f", str(linked / "Makefile"), "params", f"PYTHON={sys.executable}", f"PY={sys.executable}",
               "PARAMS=task3.num_epochs=5"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k not in STRIPPED})
    assert proc.returncode == 0 and "task3: num_epochs=5" in proc.stdout, proc.stdout + proc.stderr
