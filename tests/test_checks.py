"""make check (support/checks.py): each typical mistake, made alone in a copy of utils.py, fails the check of its own
task, names the function and a line inside it where the mistake is, and says what kind of mistake it looks like; a
blank is "not started"; the source passes every check; a module that does not import fails every check with where."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import trainer
from grading.mistakes import TYPICAL
from support import checks, probes

ROOT = Path(__file__).resolve().parent.parent
MISTAKES = {name: (m.source, m.mistake, m.task, m.function, m.line, m.kind) for name, m in TYPICAL.items()}


def mistaken_utils(tmp_path, source: str, mistake: str):
    """utils.py with one mistake, imported from `tmp_path` as a module of its own."""
    text = (ROOT / "utils.py").read_text()
    assert text.count(source) == 1
    path = tmp_path / "utils.py"
    path.write_text(text.replace(source, mistake))
    spec = importlib.util.spec_from_file_location("mistaken_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_checks(modules: dict) -> list[checks.Result]:
    return checks.run(modules=modules)


def run_one(name: str, modules: dict) -> checks.Result:
    check = checks.BY_NAME[name]
    inputs = checks.inputs_of(check)
    return checks.judge(check, probes.answer(check.probe, check.function, modules, inputs, ROOT), inputs)


@pytest.mark.parametrize("name", MISTAKES)
def test_a_typical_mistake_fails_its_own_task_naming_function_line_and_kind(tmp_path, name):
    source, mistake, task, function, line_text, kind = MISTAKES[name]
    utils = mistaken_utils(tmp_path, source, mistake)
    results = run_checks({"utils": utils, "trainer": trainer})
    status = checks.task_status(results)
    assert {t for t, s in status.items() if s != checks.DONE} == {task}, checks.table(results)
    failing = [r for r in results if r.status == checks.FAILING and not r.check.startswith("course:")]
    assert len(failing) == 1, checks.table(results)
    found = failing[0]
    assert (found.function, found.kind) == (function, kind)
    assert found.file == "utils.py"
    assert line_text in (tmp_path / "utils.py").read_text().splitlines()[found.line - 1]


def test_the_source_passes_every_check():
    results = checks.run()
    assert all(r.status == checks.DONE for r in results), checks.table(results)
    assert set(checks.task_status(results).values()) == {checks.DONE}


def test_a_blank_is_not_started_and_names_its_place(tmp_path):
    source = '    one_hot = np.zeros((y.shape[0], num_classes), dtype=dtype)\n'
    blank = '    raise NotImplementedError("Task 3a: one_hot_encode is not written yet")\n'
    utils = mistaken_utils(tmp_path, source, blank)
    results = run_checks({"utils": utils, "trainer": trainer})
    assert checks.task_status(results)["3a"] == checks.NOT_STARTED
    one_hot = next(r for r in results if r.check == "one_hot_encode")
    assert (one_hot.status, one_hot.file, one_hot.message) == (checks.NOT_STARTED, "utils.py", "not written yet")
    assert "raise NotImplementedError" in (tmp_path / "utils.py").read_text().splitlines()[one_hot.line - 1]
    assert "not written yet: one_hot_encode (utils.py:" in checks.table(results)


def test_a_train_step_that_climbs_is_told_so():
    class Climbing(trainer.BaseTrainer):
        def train_step(self, X_batch, Y_batch):
            outputs = self.model.forward(X_batch)
            self.model.backward(X_batch, outputs, Y_batch)
            self.model.w += self.learning_rate * self.model.grad
            return trainer.utils.cross_entropy_loss(Y_batch, outputs)

    module = type(sys)("climbing_trainer")
    module.__dict__.update(trainer.__dict__)
    module.BaseTrainer = Climbing
    result = run_one("train_step", {"utils": trainer.utils, "trainer": module})
    assert (result.status, result.kind) == (checks.FAILING, "step_sign")


def test_the_early_stopping_rule_is_the_courses():
    late = type(sys)("late_trainer")
    late.should_early_stop = lambda losses, num_steps=10: trainer.should_early_stop(dict(list(losses.items())[:-1]),
                                                                                     num_steps)
    assert run_one("should_early_stop", {"utils": trainer.utils, "trainer": trainer}).status == checks.DONE
    result = run_one("should_early_stop", {"utils": trainer.utils, "trainer": late})
    assert (result.status, result.kind) == (checks.FAILING, "rule") and "the course's rule says" in result.message


def test_a_module_that_does_not_import_fails_every_check_saying_where(tmp_path):
    (tmp_path / "utils.py").write_text((ROOT / "utils.py").read_text().replace("def sigmoid(", "def sigmoid(:", 1))
    (tmp_path / "trainer.py").write_text((ROOT / "trainer.py").read_text())
    done = subprocess.run([sys.executable, "-m", "support.checks", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""})
    results = json.loads(done.stdout)
    assert done.returncode == 1 and {r["status"] for r in results} == {"failing"}
    assert results[0]["file"] == "utils.py" and "SyntaxError" in results[0]["message"], results[0]


def test_check_in_a_notebook_shows_the_table_and_never_raises():
    shown = checks.check("2")
    assert set(shown.status) == {"2a", "2b", "2c", "2d", "2e"}
    assert repr(shown).splitlines()[0].startswith("Task 2a  done") and "<table>" in shown._repr_html_()
    with pytest.raises(ValueError, match="no checks for task '5a'"):
        checks.selected("5a")
