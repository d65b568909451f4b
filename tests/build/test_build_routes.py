"""Trust, third round: every route the README or an error message promises works, tried in the build as a user
takes it. Each test is a row of the README's "What happens when" table."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from conftest import AS_ROOT, SMOKE, STRIPPED, build_dir, edit_cell, make, pdf, pdf_text, wait_for

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[2]
MAKE_381 = ROOT.parent / "shared" / "tools" / "make-3.81"  # macOS's make, where this checkout has it beside


def test_a_students_own_package_reaches_the_hand_in_and_the_graders_rebuild_works(project, tmp_path):
    """task3.ipynb imports a package of the student's (mylib/): the fingerprints count it, so the hand-in packs it,
    and the build from the unpacked zip (what a grader does) works."""
    (project / "mylib").mkdir()
    (project / "mylib" / "__init__.py").write_text("")
    (project / "mylib" / "core.py").write_text('def label(run):\n    return f"softmax run: {run.num_steps} steps"\n')
    restore = edit_cell(project / "task3.ipynb", lambda c: "run_task3(" in "".join(c["source"]),
                        "from experiments import", "from mylib.core import label\nfrom experiments import")
    try:
        code, output = make(project, "submission")
        assert code == 0 and "Hand in these two files:" in output, output
        names = zipfile.ZipFile(project / "assignment_code.zip").namelist()
        assert {"mylib/__init__.py", "mylib/core.py"} <= set(names), names
        unpacked = tmp_path / "the grader's copy"
        zipfile.ZipFile(project / "assignment_code.zip").extractall(unpacked)
        code, output = make(unpacked, "report")
        assert code == 0 and "report:" in output, output
    finally:
        restore()
        shutil.rmtree(project / "mylib")


@AS_ROOT
def test_a_read_only_checkout_builds_elsewhere_by_the_route_its_error_gives(project, tmp_path):
    """A course folder mounted read-only, a git checkout: the one line the build gives names PY=, BUILD_DIR=, PDF=;
    that route builds, and nothing tries to write .git/config."""
    checkout = tmp_path / "course copy"
    shutil.copytree(project, checkout, ignore=shutil.ignore_patterns("build", "*.pdf", "*.zip"))
    subprocess.run(["git", "init", "-q"], cwd=checkout, check=True)
    mounted = tmp_path / "read-only"
    mounted.mkdir()
    subprocess.run(["mount", "--bind", str(checkout), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], check=True)
        code, output = make(mounted, "report")
        assert code != 0 and len(output.strip().splitlines()) == 1 and "BUILD_DIR=" in output, output
        elsewhere = tmp_path / "my build"
        elsewhere.mkdir()
        for target in ("params", "report", "setup"):
            code, output = make(mounted, target, f"BUILD_DIR={elsewhere}", f"PDF={elsewhere / 'report.pdf'}")
            assert code == 0 and "Traceback" not in output, (target, output)
        assert "cannot be written (a read-only checkout?)" in output and output.count("note:") == 1, output
        assert (elsewhere / "report.pdf").exists()
    finally:
        subprocess.run(["umount", str(mounted)])


@pytest.mark.parametrize("notebook", ["report.ipynb", "task3.ipynb"])
def test_a_notebook_caught_half_written_stops_the_build_with_one_line_naming_it(project, notebook):
    path = project / notebook
    whole = path.read_bytes()
    path.write_bytes(whole[:2000])
    try:
        code, output = make(project, "report")
    finally:
        path.write_bytes(whole)
    assert code != 0 and "Traceback" not in output, output
    assert output.strip().splitlines()[-1].startswith(f"error: {notebook} does not read as a notebook"), output


def test_make_watch_keeps_watching_through_rapid_saves_written_in_place(project):
    """Forty saves of report.ipynb in two seconds, each written in place in two halves (as `cp` writes): the watcher
    reads a half-written file at times, says so in a line, and keeps watching; the PDF ends with the last save."""
    path = project / "report.ipynb"
    before = path.read_bytes()
    proc = make(project, "watch", wait=False)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        wait_for(lambda: any(line.startswith("report:") for line in lines), timeout=300)
        book = json.loads(before)
        for save in range(40):
            book["cells"][-1]["source"] = f"The last line, save {save}."
            data = json.dumps(book, indent=1).encode()
            with open(path, "wb") as f:  # in place: a reader may see half of it
                f.write(data[:len(data) // 2])
                f.flush()
                time.sleep(0.02)
                f.write(data[len(data) // 2:])
            time.sleep(0.03)
        wait_for(lambda: "save 39" in pdf_text(pdf(project)) if pdf(project).exists() else False, timeout=300)
        assert proc.poll() is None, "".join(lines)
        assert "Traceback" not in "".join(lines), "".join(lines)
    finally:
        proc.terminate()
        proc.wait(30)
        path.write_bytes(before)


@pytest.mark.parametrize("target", ["/nonexistent/report.pdf", "build/notebooks/report.pdf", ".venv/report.pdf",
                                    "data/report.pdf"])
def test_an_output_path_in_a_missing_or_owned_folder_is_refused_before_any_work(project, target):
    path = project / target
    code, output = make(project, "report", f"PDF={path}")
    assert code != 0 and f"PDF={path}" in output and "Nothing was run" in output, output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
    assert not path.parent.exists() or path.parent == build_dir(project).parent / "notebooks" or not path.exists()
    assert not Path("/nonexistent").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("make_program", ["make", str(MAKE_381)])
def test_make_f_with_a_path_that_has_spaces_from_another_folder(project, tmp_path, make_program):
    if shutil.which(make_program) is None:
        pytest.skip(f"{make_program} is not here")
    assert " " in str(project)
    command = [make_program, "-f", str(project / "Makefile"), "params", f"PYTHON={sys.executable}",
               f"PY={sys.executable}", "PARAMS=task3.num_epochs=5"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k not in STRIPPED})
    assert proc.returncode == 0 and "task3: num_epochs=5" in proc.stdout, proc.stdout + proc.stderr


def test_a_task_added_by_copying_its_notebook_and_listing_it_runs_in_make_report(project):
    """task3.ipynb saved as task5.ipynb and listed in pyproject.toml: make report runs it and writes its results and
    figures under its own name, with no other file changed."""
    pyproject = project / "pyproject.toml"
    before = pyproject.read_text()
    last = '{name = "task4", config = "Task4Config", waits_for = "task3"}]'
    assert last in before
    shutil.copy(project / "task3.ipynb", project / "task5.ipynb")
    pyproject.write_text(before.replace(last, last[:-1] + ',\n         {name = "task5", config = "Task3Config"}]'))
    try:
        smoke = "task5.train_size=600 task5.num_epochs=2 task5.gradient_check_examples=5 " + SMOKE
        code, output = make(project, "report", params=smoke)
        assert code == 0 and "task5.ipynb ran" in output, output
        record = json.loads((build_dir(project) / "results" / "task5.json").read_text())
        assert record["task"] == "task5" and record["parameters"]["num_epochs"] == 2
        figures = sorted(p.name for p in (build_dir(project) / "figures" / "task5").iterdir())
        assert figures == sorted(record["figures"]) and len(figures) == 4, figures
    finally:
        pyproject.write_text(before)
        (project / "task5.ipynb").unlink()
