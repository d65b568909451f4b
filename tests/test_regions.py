"""The solution marks (tools/regions.py) and the student version (tools/student.py): what a student receives has a
prompt and a blank where the source has a solution, nothing else changed, no solution text anywhere; put back, it
is the source; marks that do not pair up are named with their line."""

import json
import shutil
import subprocess

import pytest

from support.blanks import blanks, unwritten
from support.inline import render
from tools import regions, student

SOURCE = '''import numpy as np


def scale(x):
    """x from [0, 255] to [-1, 1]."""
    # BEGIN SOLUTION Task 2a: map the pixels to [-1, 1]
    # (0 becomes -1)
    return x / 127.5 - 1
    # END SOLUTION


class Model:
    def step(self, grad):
        if grad is not None:
            # BEGIN SOLUTION Task 2b: one step of gradient descent
            self.w = self.w - self.learning_rate * grad
            # END SOLUTION
        return self.w
# BEGIN HIDDEN
SECRET = 33
# END HIDDEN
'''


def test_a_region_becomes_its_prompt_and_a_blank_that_names_task_and_function():
    text = regions.student(SOURCE)
    assert "127.5" not in text and "learning_rate * grad" not in text and "SECRET" not in text
    assert '    # Task 2a: map the pixels to [-1, 1]\n    # (0 becomes -1)\n' \
           '    raise NotImplementedError("Task 2a: scale is not written yet")\n' in text
    assert '            raise NotImplementedError("Task 2b: Model.step is not written yet")\n' in text
    namespace = {}
    exec(compile(text, "student.py", "exec"), namespace)
    with pytest.raises(NotImplementedError) as raised:
        namespace["scale"](3)
    blank = unwritten(raised.value)
    assert (blank.task, blank.function) == ("2a", "scale")


def test_put_back_gives_the_source_and_refuses_a_change_outside_the_regions():
    text = regions.student(SOURCE)
    assert regions.put_back(text, SOURCE) == SOURCE
    with pytest.raises(regions.RegionError, match=r"<text>:1: the student version differs"):
        regions.put_back("import numpy as numpy\n" + text.partition("\n")[2], SOURCE)


@pytest.mark.parametrize("text, message", [
    ("# BEGIN SOLUTION Task 2a: x\nx = 1\n", r"f.py:1: BEGIN SOLUTION without its END"),
    ("x = 1\n# END SOLUTION\n", r"f.py:2: END SOLUTION without its BEGIN"),
    ("# BEGIN SOLUTION Task 2a: x\n# BEGIN SOLUTION Task 2b: y\n", r"f.py:2: a BEGIN inside the region that starts at "
                                                                   r"line 1"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", r"f.py:1: BEGIN SOLUTION names no task"),
])
def test_marks_that_do_not_pair_up_are_named_with_their_line(text, message):
    with pytest.raises(regions.RegionError, match=message):
        regions.split(text, "f.py")


def notebook(*cells):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source,
                       **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                      for i, (kind, source) in enumerate(cells)]}


def test_an_answer_over_several_cells_becomes_one_cell_asking_for_it():
    book = notebook(("markdown", "## Task 3d: does it overfit?"),
                    ("markdown", "<!-- BEGIN SOLUTION Task 3d: does the model overfit? -->\n{eval}`when(t3.overfits)` "
                                 "Yes."),
                    ("markdown", "{eval}`when(not t3.overfits)` No.\n<!-- END SOLUTION -->"),
                    ("markdown", "## Task 4a"))
    out = regions.notebook_student(book, "report.ipynb")
    assert [c["id"] for c in out["cells"]] == ["c0", "c1", "c3"]
    assert "".join(out["cells"][1]["source"]) == ("<!-- ANSWER Task 3d: replace this cell with your answer -->\n"
                                                  "**Task 3d, your answer.** *does the model overfit?*")
    assert regions.pending_answers(out) == ["3d"] and regions.pending_answers(book) == []
    assert [task for task, _ in regions.notebook_regions(book, "report.ipynb")] == ["3d"]


def test_the_marks_never_show_in_an_export():
    book = notebook(("markdown", "<!-- BEGIN SOLUTION Task 1a: derive it -->\nThe gradient is {eval}`g`.\n"
                                 "<!-- END SOLUTION -->"))
    book["cells"][0]["metadata"]["user_expressions"] = [
        {"expression": "g", "result": {"status": "ok", "data": {"text/plain": "'-x(y - yhat)'"}}}]
    assert "".join(render(book)["cells"][0]["source"]) == "The gradient is -x(y - yhat).\n"


def project(tmp_path, extra=None):
    """A small project under git: a module with regions, a notebook with an answer, a test, an instructor's file."""
    root = tmp_path / "source"
    files = {"utils.py": SOURCE, "report.ipynb": json.dumps(notebook(
        ("markdown", "## Task 1a"), ("markdown", "<!-- BEGIN SOLUTION Task 1a: derive it -->\nThe derivative of the "
                                                 "sigmoid is f(1 - f).\n<!-- END SOLUTION -->"))),
             "tests/test_utils.py": "def test_nothing():\n    pass\n", ".ci/run": "make test\n",
             "README.md": "# A project\n", **(extra or {})}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if shutil.which("git"):  # tracked files; without git, every file of the folder (both as make student reads them)
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "."], cwd=root, check=True)
    return root


def test_the_student_version_leaves_out_the_instructors_files_and_verifies(tmp_path, monkeypatch):
    monkeypatch.setattr("support.project.INSTRUCTOR", (".ci/*",))
    root, out = project(tmp_path), tmp_path / "dist" / "student"
    names = student.write(out, root)
    assert ".ci/run" not in names and not (out / ".ci").exists() and not (out / ".git").exists()
    assert (out / "README.md").read_text() == "# A project\n"
    assert [(b.task, b.function) for b in blanks(out, ["utils.py"])] == [("2a", "scale"), ("2b", "Model.step")]
    assert regions.pending_answers(json.loads((out / "report.ipynb").read_text())) == ["1a"]
    assert student.verify(out, root) == []


def test_a_solution_line_anywhere_in_the_student_version_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr("support.project.INSTRUCTOR", (".ci/*",))
    leak = "def test_step():\n    self.w = self.w - self.learning_rate * grad\n"
    root, out = project(tmp_path, {"tests/test_model.py": leak}), tmp_path / "dist" / "student"
    student.write(out, root)
    problems = student.verify(out, root)
    assert problems == ["a line of a solution region of utils.py is in the student version's tests/test_model.py: "
                        "self.w = self.w - self.learning_rate * grad"]


def test_a_mark_in_a_file_whose_regions_are_not_read_stops_the_student_version(tmp_path, monkeypatch):
    monkeypatch.setattr("support.project.INSTRUCTOR", ())
    root = project(tmp_path, {"notes.txt": "# BEGIN SOLUTION Task 2a: x\n"})
    with pytest.raises(student.BuildError, match="notes.txt: solution marks in a file whose regions are not read"):
        student.write(tmp_path / "out", root)


def test_the_source_marks_pair_up_and_every_region_names_a_task():
    assert regions.problems(student.ROOT, student.source_files()) == []
    found = [r for name in ("utils.py", "trainer.py") for r in regions.regions((student.ROOT / name).read_text())]
    assert {r.task for r in found} >= {"2a", "2b", "2c", "2d", "2e", "3a", "3c", "4a"}
    assert all(r.prompt[0] for r in found)
