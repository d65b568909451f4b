"""The assignment a student does, end to end: the student version builds a partial report with every heading while
nothing is written, its submission waits until asked, and with the solutions put back it is the source again, whose
report it builds word for word; a mistake stops make report at the checks, before any training."""

import shutil

import pytest
from conftest import ROOT, make, pdf, pdf_text

from support.project import HEADINGS
from tools import student


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    """The student version of this source, as make student writes it, in a folder whose name has a space."""
    out = tmp_path_factory.mktemp("student") / "a student version"
    student.write(out, ROOT)
    return out


def test_with_nothing_written_the_checks_say_not_started_and_the_report_has_every_heading(blank):
    code, output = make(blank, "check", params="")
    assert code == 0 and "0 done, 8 not started, 0 failing" in output, output
    code, output = make(blank, "report")
    assert code == 0, output
    assert "partial report: 16 of 16 tasks pending" in output, output
    text = pdf_text(pdf(blank))
    assert all(heading in text for heading in HEADINGS), text
    assert "Pending. Task 2b, not written yet: BaseTrainer.train_step (trainer.py:" in text.replace("\n", " ")
    assert "Task 1a, your answer." in text and "127.5" not in text


def test_a_partial_report_is_handed_in_only_when_asked(blank):
    zip_path = blank / "assignment_code.zip"
    code, output = make(blank, "submission")
    assert code != 0 and "is a partial report, 16 tasks pending:\n  1a: Task 1a: the answer is not written yet" in output
    assert "  2b: Task 2b, not written yet: BaseTrainer.train_step (trainer.py:" in output
    assert "make submission PARTIAL=yes" in output and not zip_path.exists()
    code, output = make(blank, "submission", "PARTIAL=yes")
    assert code == 0 and zip_path.exists() and "Handed in as a partial report (PARTIAL=yes)" in output, output


def test_with_the_solutions_put_back_it_is_the_source_and_builds_its_report_word_for_word(blank, project, tmp_path):
    done = tmp_path / "done"
    student.put_back_all(blank, done)
    code, output = make(done, "check", params="")
    assert code == 0 and "8 done, 0 not started, 0 failing" in output, output
    code, output = make(done, "report")
    assert code == 0 and "partial report" not in output, output
    assert pdf_text(pdf(done)) == pdf_text(pdf(project))


def test_a_mistake_stops_make_report_at_the_checks_naming_function_line_and_kind(blank, tmp_path):
    wrong = tmp_path / "wrong"
    shutil.copytree(blank, wrong, ignore=shutil.ignore_patterns("build", "*.pdf", "*.zip"))
    path = wrong / "utils.py"
    text = path.read_text()
    placeholder = '        raise NotImplementedError("Task 2a: BinaryModel.loss_gradient is not written yet")\n'
    path.write_text(text.replace(placeholder, "        return X.T @ (outputs - targets)\n"))
    code, output = make(wrong, "report")
    assert code != 0 and "the checks of your code fail, so no report is built on it" in output, output
    assert "BinaryModel.loss_gradient (utils.py:" in output and "N = 6 times too large" in output, output
    assert "task2.ipynb" not in output  # stopped before any training
