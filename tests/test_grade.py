"""make grade (grading/): the source's code grades full marks, a blank student version zero, a typical mistake costs
its own task's points only, with make check's words; a hand-in that tries to grade itself gets no more than a blank
one, and the grader finishes within its limits and says what it saw; results.json is Gradescope's format; many
hand-ins give one CSV. The hidden checks of the official numbers need MNIST: the build's own run covers them (make
release), these run without."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grading import grade as grading
from grading.autograder import write_zip
from grading.commands import _hand_in
from grading.mistakes import TYPICAL
from grading.results_schema import problems_of
from support.checks import CHECKS
from tools import student

ROOT = Path(__file__).resolve().parent.parent
FULL = sum(check.points for check in CHECKS)
CODE = ["utils.py", "trainer.py", "mnist.py"]


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    """The student version's code: every region a blank."""
    out = tmp_path_factory.mktemp("blank") / "student"
    out.mkdir()
    for name in CODE:
        text = (ROOT / name).read_text()
        (out / name).write_text(student.student_text(name, text))
    return out


def source_copy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in CODE:
        shutil.copy(ROOT / name, folder / name)
    return folder


def test_the_source_grades_full_and_a_blank_zero(tmp_path, blank):
    found = grading.grade(source_copy(tmp_path / "source"), tmp_path / "graded-source", official=False)
    assert (found.score, found.max_score) == (FULL, FULL), grading.table(found)
    nothing = grading.grade(blank, tmp_path / "graded-blank", official=False)
    assert nothing.score == 0 and nothing.max_score == FULL
    assert "not started: pre_process_images [1]: pre_process_images (utils.py:" in grading.table(nothing)


@pytest.mark.parametrize("name", ["gradient sign flipped", "one-hot off by one", "L2 term missing"])
def test_a_typical_mistake_costs_its_own_tasks_points_in_make_checks_words(tmp_path, name):
    mistake = TYPICAL[name]
    folder = source_copy(tmp_path / "hand-in")
    mistake.made_in(folder)
    found = grading.grade(folder, tmp_path / "graded", official=False)
    lost = {task for task, (score, most) in found.by_task().items() if score < most}
    assert lost == {mistake.task}, grading.table(found)
    failed = [g.result for g in found.checks if g.score == 0 and not g.result.check.startswith("course:")]
    assert [(r.function, r.kind) for r in failed] == [(mistake.function, mistake.kind)]
    assert f"{mistake.function} (utils.py:" in grading.table(found)


# what the hand-in's utils.py does at import (after its own imports): evidence the grader reports it by
HOSTILE = {
    "writes a results.json": ("open('results.json', 'w').write('{\"score\": 999}')\n",
                              "refused: writing results.json"),
    "writes a results.json elsewhere, quietly": ("try:\n    open('/tmp/results.json', 'w').write('999')\n"
                                                 "except OSError:\n    pass\n", "refused: writing /tmp/results.json"),
    "replaces the grader's functions": ("import sys\nsys.modules['support.probes'].answer = "
                                        "lambda *a, **k: {'data': {'value': 1.0}}\n", "failing: pre_process_images"),
    "calls os._exit(0)": ("import os\nos._exit(0)\n", "exited with code 0 (importing the hand-in's modules)"),
    "reads the reference outside its folder": (f"exec(open({str(ROOT / 'utils.py')!r}).read())\n",
                                               f"refused: reading {ROOT / 'utils.py'} (outside the hand-in)"),
    "reads a file outside, quietly": ("try:\n    open('/etc/hostname').read()\nexcept OSError:\n    pass\n",
                                      "refused: reading /etc/hostname (outside the hand-in)"),
    "loops forever at import": ("while True:\n    pass\n", "ran out of time (importing the hand-in's modules)"),
    "allocates without bound": ("hoard = []\nwhile True:\n    hoard.append(bytearray(1 << 24))\n", "MemoryError"),
    "starts a process": ("import os\nos.system('touch /tmp/hostile-was-here')\n", "refused: os.system"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hand_in_that_tries_to_grade_itself_gets_no_more_than_a_blank(tmp_path, blank, monkeypatch, name):
    monkeypatch.setattr(grading, "IMPORT_SECONDS", 3.0)
    monkeypatch.setattr(grading, "MEMORY_BYTES", 1 << 30)
    code, evidence = HOSTILE[name]
    folder = tmp_path / "hostile"
    shutil.copytree(blank, folder)
    (folder / "utils.py").write_text((folder / "utils.py").read_text() + "\n" + code)
    started = time.monotonic()
    found = grading.grade(folder, tmp_path / "graded", official=False)
    said = grading.table(found)
    assert found.score == 0 and evidence in said, said
    assert time.monotonic() - started < 60
    assert not (folder / "results.json").exists() and not Path("/tmp/hostile-was-here").exists()
    assert sum(t["score"] for t in json.loads((tmp_path / "graded" / "results.json").read_text())["tests"]) == 0


def test_a_hand_in_that_never_imports_is_started_once_hidden_checks_and_all(tmp_path, blank, monkeypatch):
    monkeypatch.setattr(grading, "IMPORT_SECONDS", 2.0)
    fake = [grading.hidden.Hidden(f"hidden {n}", "2d", 1, "trainer:should_early_stop", lambda box: (True, "ran"))
            for n in range(3)]
    monkeypatch.setattr(grading.hidden, "HIDDEN", fake)
    folder = tmp_path / "hand-in"
    shutil.copytree(blank, folder)
    (folder / "utils.py").write_text((folder / "utils.py").read_text() + "\nwhile True:\n    pass\n")
    started = time.monotonic()
    found = grading.grade(folder, tmp_path / "graded", official=True)
    assert time.monotonic() - started < 10 and found.score == 0
    assert [g.result.message for g in found.checks[-3:]] == [found.checks[0].result.message] * 3


def test_a_hidden_check_has_a_time_limit_over_all_its_calls(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "HIDDEN_SECONDS", 1.0)

    def slow(box):  # the reference's training, calling the hand-in's function again and again
        while True:
            grading.hidden.ask(box, {"call": "should_early_stop", "losses": [1.0, 2.0], "num_steps": 3})

    monkeypatch.setattr(grading.hidden, "HIDDEN", [grading.hidden.Hidden("hidden", "2d", 1, "trainer:should_early_stop",
                                                                          slow)])
    started = time.monotonic()
    found = grading.grade(source_copy(tmp_path / "hand-in"), tmp_path / "graded", official=True)
    assert time.monotonic() - started < 30 and found.checks[-1].score == 0
    assert "the hidden check ran out of time" in found.checks[-1].result.message


def test_a_function_that_never_returns_fails_its_check_and_the_rest_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "CHECK_SECONDS", 1.0)
    folder = source_copy(tmp_path / "hand-in")
    text = (folder / "utils.py").read_text()
    (folder / "utils.py").write_text(text.replace('    """Logistic function 1 / (1 + exp(-z)) of the logits, '
                                                  'elementwise; into `out` if given."""\n',
                                                  '    """Never returns."""\n    while True:\n        pass\n', 1))
    found = grading.grade(folder, tmp_path / "graded", official=False)
    sigmoid_points = sum(c.points for c in CHECKS if c.name in ("sigmoid", "forward (binary)",
                                                                  "course: outputs 0.5 at zero weights",
                                                                  "course: gradient approximation test"))
    assert found.score == FULL - sigmoid_points, grading.table(found)
    assert "ran out of time" in grading.table(found)


def test_results_json_is_gradescopes_format_and_the_schema_refuses_what_it_is_not(tmp_path, blank):
    grading.grade(blank, tmp_path / "graded", official=False)
    path = tmp_path / "graded" / "results.json"
    assert problems_of(path) == []
    results = json.loads(path.read_text())
    assert len(results["tests"]) == len(CHECKS) and {t["status"] for t in results["tests"]} == {"failed"}
    results["tests"][0]["status"] = "partly"
    results["tests"][1].pop("score")  # and none at the top
    path.write_text(json.dumps(results))
    problems = problems_of(path)
    assert any("tests/0/status" in p for p in problems) and any("the top" in p for p in problems), problems


def test_a_student_sees_no_hidden_check_until_the_grades_are_published():
    shown = grading.Result("softmax", "3a", "done", "softmax")
    hidden = grading.Result("hidden: the official 2d stop (epoch 33)", "2d", "failing", "should_early_stop",
                            message="stops in epoch 40")
    found = grading.Grade("alice", "hand-ins/alice.zip", [grading.Graded(shown, 1, 1),
                                                          grading.Graded(hidden, 1, 0, hidden=True)])
    results = grading.gradescope(found, seed=7)
    assert "score" not in results and "official 2d" not in results["output"] and "epoch 40" not in results["output"]
    assert [t["visibility"] for t in results["tests"]] == ["visible", "after_published"]
    assert "hidden: the official 2d stop" in grading.table(found)  # the instructor's table shows it


def test_hand_ins_alike_in_name_keep_their_folders_names(tmp_path):
    paths = [tmp_path / who / "assignment_code.zip" for who in ("alice", "bob")]
    for path in paths:
        path.parent.mkdir()
        path.write_bytes(b"")
    assert list(grading.names_of(paths).values()) == ["alice-assignment_code", "bob-assignment_code"]


def test_many_hand_ins_give_one_csv(tmp_path, blank):
    hand_ins = [_hand_in(blank, None, tmp_path / f"student-{n}.zip") for n in range(3)]
    hand_ins.append(source_copy(tmp_path / "good"))
    grades = grading.grade_all(hand_ins, tmp_path / "graded", official=False, workers=2)
    rows = list(csv.DictReader((tmp_path / "graded" / "grades.csv").open()))
    assert [row["submission"] for row in rows] == ["student-0", "student-1", "student-2", "good"]
    assert [int(row["total"]) for row in rows] == [0, 0, 0, FULL] == [g.score for g in grades]
    assert int(rows[3]["task 2a"]) == sum(c.points for c in CHECKS if c.task == "2a")


def test_a_hand_in_that_is_not_one_is_said_so(tmp_path):
    (tmp_path / "notes.zip").write_text("not a zip")
    found = grading.grade(tmp_path / "notes.zip", tmp_path / "graded", official=False)
    assert found.score == 0 and "is not a zip or a folder" in found.seen[0]
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../outside.py", "x = 1\n")
    found = grading.grade(tmp_path / "evil.zip", tmp_path / "graded-evil", official=False)
    assert "a path outside the hand-in" in found.seen[0] and not (tmp_path / "outside.py").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="run_autograder is a bash script")
def test_the_autograder_runs_against_a_stand_in_autograder_folder(tmp_path, blank):
    stand_in = tmp_path / "autograder"
    with zipfile.ZipFile(write_zip(tmp_path / "autograder.zip")) as archive:
        names = archive.namelist()
        archive.extractall(stand_in / "source")
    assert {"setup.sh", "run_autograder", "grading/hidden.py", "requirements.lock"} <= set(names)
    hand_in = _hand_in(blank, None, tmp_path / "hand-in.zip")
    (stand_in / "submission").mkdir()
    with zipfile.ZipFile(hand_in) as archive:
        archive.extractall(stand_in / "submission")
    run = stand_in / "source" / "run_autograder"
    run.chmod(0o755)
    subprocess.run(["bash", "-n", str(stand_in / "source" / "setup.sh")], check=True)
    env = {"PATH": "/usr/bin:/bin", "AUTOGRADER_ROOT": str(stand_in), "AUTOGRADER_PYTHON": sys.executable,
           "MNIST_DIR": str(tmp_path / "none")}
    done = subprocess.run([str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = stand_in / "results" / "results.json"
    assert problems_of(results) == [] and json.loads(results.read_text())["extra_data"]["score"] == 0
    assert "MNIST is not in the autograder's cache" in json.loads(results.read_text())["output"]
    with subprocess.Popen([str(run)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        proc.stdout.close()  # its log gone (a closed pipe): the results stand
    assert proc.returncode == 0 and problems_of(results) == []


def test_hand_ins_are_taken_in_the_shapes_students_upload(tmp_path):
    """The edited files alone (the course's mnist.py left out), the code zipped with its folder, a folder holding one
    zip (Gradescope's upload of a zip): each graded as the code it holds, and said how."""
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("utils.py", "trainer.py"):
        shutil.copy(ROOT / name, edited / name)
    with zipfile.ZipFile(tmp_path / "folder.zip", "w") as archive:
        for name in CODE:
            archive.write(ROOT / name, f"assignment1/{name}")
    upload = tmp_path / "upload"
    upload.mkdir()
    shutil.copy(tmp_path / "folder.zip", upload / "my hand-in.zip")
    for path, said in ((edited, "mnist.py was not in the hand-in: the course's own copy was used"),
                       (tmp_path / "folder.zip", "the code is in its folder assignment1/: graded from there"),
                       (upload, "the folder holds one zip, my hand-in.zip: graded from it")):
        code, pdf, notes = grading.unpack(path, tmp_path / "work" / path.name)
        assert (code / "utils.py").read_bytes() == (ROOT / "utils.py").read_bytes() and (code / "mnist.py").exists()
        assert said in notes and pdf is None
    assert grading.course_modules(edited) == ["mnist.py"]  # utils.py and trainer.py are the student's: never filled


def test_grades_csv_keeps_the_hand_ins_of_earlier_runs(tmp_path, blank):
    out, other = tmp_path / "graded", shutil.copytree(blank, tmp_path / "other")
    grading.grade_all([other], out, official=False)
    grading.grade_all([blank], out, official=False)
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [(row["submission"], int(row["total"]), int(row["max"])) for row in rows] == [("other", 0, FULL),
                                                                                        ("student", 0, FULL)]
    shutil.rmtree(out / "other")  # its results gone: its row too, at the next run
    grading.grade_all([blank], out, official=False)
    assert [row["submission"] for row in csv.DictReader((out / "grades.csv").open())] == ["student"]


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:  # ended meanwhile
        return b""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups, and /proc to find what is left")
def test_ctrl_c_stops_the_grading_of_several_hand_ins_at_once(tmp_path, blank):
    """Ctrl-C in a terminal reaches the grader and its workers: all stop within seconds, each hand-in's process
    with them, nothing half-made left; those graded before stay in grades.csv."""
    slow = []
    for n in range(2):
        folder = tmp_path / f"slow-{n}"
        shutil.copytree(blank, folder)
        (folder / "utils.py").write_text((folder / "utils.py").read_text() + "\nimport time\ntime.sleep(25)\n")
        slow.append(folder)
    script = ("import sys; from pathlib import Path; from grading.grade import grade_all\n"
              "grade_all([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]), official=False, workers=2)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "graded"), *map(str, slow)], cwd=ROOT,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    time.sleep(2)  # both hand-ins importing, in their sandboxes
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    proc.wait(timeout=20)
    assert time.monotonic() - started < 8 and "KeyboardInterrupt" in proc.stderr.read()
    time.sleep(0.5)
    left = [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path).encode() in _cmdline(p)]
    assert left == [] and not list((tmp_path / "graded").glob("*.part"))
