"""The report's answers: the values its Markdown shows, and every branch of every answer rendered.

report.ipynb's Markdown is evaluated here as JupyterLab and the build evaluate it (each inline expression against
the answers to a set of results), then written in as every export writes it (support/inline.render). The results
are made up, one set per outcome: each branch cell of the report must be kept by one and left out by another.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter

from answers import (
    NOT_THIS_RUN,
    Data,
    Md,
    NotRun,
    Task2,
    Task3,
    Task4,
    count_phrase,
    load_answers,
    no,
    pct,
    pp,
    steps_phrase,
    when,
)
from experiments import TASK_CONFIGS
from summaries import fit_summary
from support import handoff
from support.inline import BRANCH, expressions, render, store
from support.results import ResultsError, save_results

ROOT = Path(__file__).resolve().parent.parent
REPORT = json.loads((ROOT / "report.ipynb").read_text(encoding="utf-8"))
FORMAT = DisplayFormatter()  # what the kernel sends for an expression's value


def test_numbers_and_phrases():
    assert pct(0.91476) == "91.48%" and pct(0.5, 1) == "50.0%"
    assert pp(0.0093) == "0.93 percentage points"
    assert [steps_phrase(s) for s in ([42], [42, 84], [42, 84, 1260])] == [
        "step 42", "steps 42 and 84", "steps 42, 84 and 1,260"]
    assert [count_phrase(n, "jump") for n in (0, 1, 3)] == ["no jumps", "1 jump", "3 jumps"]
    assert when(True) == "" and when(False) == NOT_THIS_RUN
    assert FORMAT.format(Md("**b**"))[0]["text/markdown"] == "**b**"  # JupyterLab renders it, the exports write it


# ---------------------------------------------------------------- made-up results, one set per outcome


def made_run(epochs, steps_per_epoch, val_every, stop_epoch=None, floor=0.06):
    """A run as a results file holds it: the validation loss falls towards `floor`; early stopping ends it in
    `stop_epoch` if given."""
    last_epoch = epochs - 1 if stop_epoch is None else stop_epoch
    num_steps = (last_epoch + 1) * steps_per_epoch
    checks = list(range(0, num_steps, val_every))
    val_loss = [floor + 0.6 * 0.9**i for i in range(len(checks))]
    val_accuracy = [0.99 - v / 4 for v in val_loss]
    history = {"train_loss": [0.7 * 0.999**i for i in range(num_steps)], "check_steps": checks, "val_loss": val_loss,
               "val_accuracy": val_accuracy, "train_accuracy": [a + 0.004 for a in val_accuracy],
               "train_set_loss": [v - 0.01 for v in val_loss]}
    best = int(np.argmin(val_loss))
    final = {"val_loss": val_loss[-1], "val_accuracy": val_accuracy[-1] + 0.001,
             "train_accuracy": val_accuracy[-1] + 0.005, "train_set_loss": val_loss[-1] - 0.01}
    return {"history": history, "num_steps": num_steps, "steps_per_epoch": steps_per_epoch, "val_every": val_every,
            "stopped_early": stop_epoch is not None, "stop_step": num_steps - 1, "stop_epoch": last_epoch,
            "best_step": checks[best], "best_val_loss": val_loss[best], "final": final,
            "best": {**final, "val_accuracy": val_accuracy[best]}}


CHECK = {"max_abs_difference": 1e-9, "tolerance": 1e-6, "epsilon": 1e-3, "num_weights": 785, "num_examples": 100,
         "seed": 0, "weight_std": 785**-0.5, "num_inputs": 785}
DIGITS = [str(d) for d in range(10)]


def course_results() -> dict[str, dict]:
    """Results as the course's values would give them on MNIST (its outcomes, not its numbers)."""
    p2, p3, p4 = (TASK_CONFIGS[t].from_notebook().as_dict() for t in ("task2", "task3", "task4"))
    early, shuffled = made_run(500, 31, 6, stop_epoch=33), made_run(500, 31, 6, stop_epoch=16)
    plain = made_run(50, 31, 6)
    spikes = {"steps": [204, 390, 576], "batch_in_epoch": [18]}
    t2 = {"parameters": p2, "gradient_check": CHECK, "data": {"num_train": 4005, "num_val": 2042},
          "class_names": ["2", "3"], "figure_notes": {},
          "runs": {"plain": plain, "early_stopping": early, "early_stopping_shuffled": shuffled},
          "fit": fit_summary(plain["history"], 50),
          "shuffle_comparison": {"first_step": 30, "last_step": 522, "num_checks": 83,
                                 "val_loss_roughness": {"plain": 0.0066, "shuffled": 0.0032},
                                 "val_accuracy_roughness": {"plain": 0.0036, "shuffled": 0.0020},
                                 "spikes_plain": spikes, "spikes_shuffled": {"steps": [], "batch_in_epoch": []}},
          "shuffle_seeds": {"seeds": list(range(20)), "stop_epochs": [16 + i % 7 for i in range(20)],
                            "stopped_early": [True] * 20},
          "analysis": {"num_val": 2042, "num_wrong": 43,
                       "mistakes": [{"index": 1, "true": "2", "predicted": "3", "confidence": 0.993}]}}
    softmax = made_run(50, 156, 31, floor=0.3)
    confusion = [[90 if i == j else (5 if (i, j) == (2, 8) else 1) for j in range(10)] for i in range(10)]
    t3 = {"parameters": p3, "gradient_check": {**CHECK, "num_weights": 7850}, "data": {"num_train": 20000,
                                                                                     "num_val": 10000},
          "figure_notes": {}, "runs": {"softmax": softmax}, "fit": fit_summary(softmax["history"], 50),
          "analysis": {"class_names": DIGITS, "confusion": confusion, "accuracy": 0.9157,
                       "per_class_accuracy": [sum(r[i] for i in range(10) if i == k) / sum(r) for k, r in
                                              enumerate(confusion)],
                       "mistakes": [{"index": 2, "true": "2", "predicted": "7", "confidence": 0.998}]}}
    lambdas = [float(x) for x in p4["lambdas"]]
    stops = {2.0: 3, 0.2: 17, 0.02: 30, 0.002: None, 0.0: None}
    runs = {repr(x): made_run(50, 156, 31, stop_epoch=stops.get(x), floor=0.3 + x) for x in [*lambdas, 0.0]}
    for x in lambdas:  # each penalty ends below no regularisation, the larger the lower
        runs[repr(x)]["final"] = {**runs["0.0"]["final"], "val_accuracy": 0.9157 - 0.05 * x - 0.001,
                                  "train_accuracy": 0.9225 - 0.05 * x - 0.001}
    runs["0.0"]["final"] = {**runs["0.0"]["final"], "val_accuracy": 0.9157, "train_accuracy": 0.9225}
    t4 = {"parameters": p4, "gradient_check": {**CHECK, "num_weights": 7850}, "data": {"num_train": 20000,
                                                                                     "num_val": 10000},
          "figure_notes": {}, "runs": runs, "fit": {k: fit_summary(r["history"], 50) for k, r in runs.items()},
          "squared_norms": {"2.0": 0.365, "0.2": 2.74, "0.02": 10.37, "0.002": 21.35, "0.0": 23.95},
          "max_abs_pixel_weight": {"2.0": 0.035, "0.2": 0.1, "0.02": 0.2, "0.002": 0.3, "0.0": 0.326},
          "weight_image_roughness": {"0.0": 0.67, "2.0": 0.47}}
    return {"task2": t2, "task3": t3, "task4": t4}


def changed(results, task, **values):
    results[task]["parameters"].update(values)


def overfitting(results):
    results["task3"]["fit"].update(val_loss_tail_slope=1e-4, final_val_loss=0.31, min_val_loss=0.30)


def helping(results, lam=0.002):
    runs = results["task4"]["runs"]
    runs[repr(lam)]["final"]["val_accuracy"] = runs["0.0"]["final"]["val_accuracy"] + 0.01


OUTCOMES = {
    "the course's values": lambda r: None,
    "another learning rate": lambda r: changed(r, "task2", learning_rate=0.1),
    "2d stops later than the official": lambda r: r["task2"]["runs"].update(
        early_stopping=made_run(500, 31, 6, stop_epoch=35)),
    "2d and 2e never stop": lambda r: (r["task2"]["runs"].update(early_stopping=made_run(40, 31, 6),
                                                                  early_stopping_shuffled=made_run(40, 31, 6)),
                                       r["task2"]["shuffle_seeds"].update(stopped_early=[False] * 20)),
    "shuffling is rougher, scattered jumps": lambda r: r["task2"]["shuffle_comparison"].update(
        val_loss_roughness={"plain": 0.003, "shuffled": 0.004},
        spikes_plain={"steps": [100, 250], "batch_in_epoch": [7, 2]},
        spikes_shuffled={"steps": [300], "batch_in_epoch": [21]}),
    "shuffled jumps too": lambda r: r["task2"]["shuffle_comparison"].update(
        spikes_shuffled={"steps": [100, 500], "batch_in_epoch": [7, 4]}),
    "no jumps": lambda r: r["task2"]["shuffle_comparison"].update(spikes_plain={"steps": [], "batch_in_epoch": []}),
    "a generator's order": lambda r: changed(r, "task2", shuffle_order="generator"),
    "every seed stops alike": lambda r: r["task2"]["shuffle_seeds"].update(stop_epochs=[16] * 20),
    "one seed": lambda r: r["task2"]["shuffle_seeds"].update(seeds=[0], stop_epochs=[16], stopped_early=[True]),
    "3 overfits and stops": lambda r: (overfitting(r), r["task3"]["runs"].update(
        softmax=made_run(50, 156, 31, stop_epoch=40, floor=0.3))),
    "3 overfits": overfitting,
    "3: no confusion at all": lambda r: r["task3"]["analysis"].update(
        confusion=[[100 if i == j else 0 for j in range(10)] for i in range(10)]),
    "4b without lambda = 2": lambda r: changed(r, "task4", weight_image_lambdas=(0.0, 0.2)),
    "4: a penalty helps": helping,
    "4: a penalty helps an overfitting model": lambda r: (helping(r), overfitting(r)),
    "4: a penalty helps within the noise": lambda r: r["task4"]["runs"]["0.002"]["final"].update(
        val_accuracy=r["task4"]["runs"]["0.0"]["final"]["val_accuracy"] + 1e-5),
    "4: no penalty costs accuracy": lambda r: [r["task4"]["runs"][k]["final"].update(val_accuracy=0.92)
                                              for k in ("2.0", "0.2", "0.02", "0.002")],
    "4: one penalty costs accuracy": lambda r: [r["task4"]["runs"][k]["final"].update(val_accuracy=0.92)
                                               for k in ("0.2", "0.02", "0.002")],
    "4: no run stops early": lambda r: [run.update(stopped_early=False) for run in r["task4"]["runs"].values()],
    "4: a small lambda stops first": lambda r: r["task4"]["runs"]["0.02"].update(stop_epoch=1),
    "4: norms up and down": lambda r: r["task4"]["squared_norms"].update({"0.02": 30.0}),
    "4: norms far from the official plot": lambda r: r["task4"]["squared_norms"].update({"0.2": 5.0}),
    "4: other lambdas": lambda r: changed(r, "task4", lambdas=(0.2, 0.02, 0.002)),
}


def namespace(results) -> dict:
    figures = ROOT / "build" / "figures"  # not read: figures are the code cells' business
    return {"data": Data(results), "t2": Task2(results["task2"], figures), "t3": Task3(results["task3"], figures),
            "t4": Task4(results["task4"], figures), "when": when, "no": no}


def evaluated(book, names) -> dict:
    """The report with every Markdown cell's expressions evaluated against `names`, stored as the kernel stores them."""
    book = copy.deepcopy(book)
    for cell in book["cells"]:
        if cell["cell_type"] == "markdown":
            found = expressions("".join(cell["source"]))
            store(cell, {e: {"status": "ok", "data": FORMAT.format(eval(e, dict(names)))[0], "metadata": {}}
                         for e in found})
    return book


@pytest.fixture(scope="module")
def rendered():
    """{outcome: (the report as exported, {branch cell's condition: kept})}."""
    out = {}
    for name, outcome in OUTCOMES.items():
        results = course_results()
        outcome(results)
        book = evaluated(REPORT, namespace(results))
        kept = render(book)
        ids = {cell["id"] for cell in kept["cells"]}
        branches = {}
        for cell in book["cells"]:
            match = BRANCH.match("".join(cell["source"])) if cell["cell_type"] == "markdown" else None
            if match:
                branches[f"{match[1]} ({cell['id']})"] = cell["id"] in ids
        out[name] = (kept, branches)
    return out


@pytest.mark.finished  # the report's answers and every task's code, as the source has them
def test_every_branch_of_every_answer_is_kept_by_one_outcome_and_left_out_by_another(rendered):
    conditions = {c for _, branches in rendered.values() for c in branches}
    assert len(conditions) >= 30, conditions
    for condition in sorted(conditions):
        seen = {branches[condition] for _, branches in rendered.values()}
        assert seen == {True, False}, f"{condition} is {'always' if True in seen else 'never'} in the report"


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_outcome_renders_whole_prose(rendered, outcome):
    book, _ = rendered[outcome]
    text = "\n".join("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "markdown")
    assert "{eval}" not in text and NOT_THIS_RUN not in text
    assert "nan" not in text.split() and "none." not in text and "'" + "'" not in text
    assert book["metadata"]["title"].startswith("TDT4265 Assignment 1: logistic and softmax regression on ")
    for heading in ("Task 1a", "Task 2e", "Task 3d", "Task 4e"):
        assert heading in text


@pytest.mark.finished  # the report's answers and every task's code, as the source has them
def test_the_default_outcome_reads_as_the_course_run(rendered):
    book, branches = rendered["the course's values"]
    text = " ".join("\n".join("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "markdown").split())
    assert "**Parameters**: the course's values throughout." in text
    assert "weights is 1.0e-09, below the tolerance $\\epsilon^2$ = 1.0e-06." in text  # compared in one format
    assert "**training stops in epoch 33**" in text and "reports epoch 33 for this run, the same as here" in text
    assert "**Neither holds together here, so the model does not overfit within the 50 epochs it trained.**" in text
    assert "With $\\lambda \\in \\{0.002, 0.02, 0.2, 2\\}$ validation accuracy falls below that of no " \
           "regularisation, the further the larger $\\lambda$ is." in text
    other = " ".join("\n".join("".join(c["source"]) for c in rendered["another learning rate"][0]["cells"]
                               if c["cell_type"] == "markdown").split())
    assert "differ from the course's values**: task2: `learning_rate = 0.1`." in other
    assert "with the course's default parameters on MNIST, which this build does not use" in other


@pytest.mark.parametrize("editor", [True, False])
def test_in_jupyterlab_a_task_whose_results_are_missing_shows_as_pending(tmp_path, monkeypatch, capsys, editor):
    """A student who ran task2.ipynb but not task3.ipynb or task4.ipynb sees the report with their values pending and
    one line per notebook to run; a build or an export still stops at the first, naming it."""
    results = course_results()["task2"]
    payload = {k: v for k, v in results.items() if k not in ("parameters", "figures", "fingerprint", "task")}
    save_results("task2", results["parameters"], payload, tmp_path / "results")
    monkeypatch.setattr(handoff, "report_inputs", lambda: (tmp_path / "results", {}, {}))
    monkeypatch.delenv(handoff.TASK_ENV, raising=False)
    monkeypatch.delenv(handoff.RESULTS_ENV, raising=False)
    if not editor:
        monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
        with pytest.raises(ResultsError, match=r"task3.json is missing: task3.ipynb must run again"):
            load_answers()
        return
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "report.ipynb"))
    data, t2, t3, t4 = load_answers()
    lines = capsys.readouterr().out.splitlines()
    named = [line.split(": ")[0].rsplit("/", 1)[-1] for line in lines]
    assert named == ["task3.json is missing", "task4.json is missing"]
    assert all(line.endswith(f": run {task}.ipynb, then this notebook again; its values show as pending")
               for line, task in zip(lines, ("task3", "task4")))
    assert t2.learning_rate == "0.05" and isinstance(t2, Task2)
    shown = []
    monkeypatch.setattr("answers.display", lambda obj: shown.append(DisplayFormatter().format(obj)[0]["text/markdown"]))
    for stand_in, task in ((data, "task3"), (t3, "task3"), (t4, "task4")):
        assert stand_in.gap == f"(pending: {task}.ipynb must run again)" and not stand_in.overfits
        assert when(stand_in.overfits) == NOT_THIS_RUN
        stand_in.figure("loss")
        assert shown.pop() == f"*(pending: {task}.ipynb must run again)*"


@pytest.mark.parametrize("waiting", ["t3", "t4"])
def test_no_branch_that_reads_a_pending_task_shows_in_jupyterlab(waiting):
    """A task whose results are pending holds no verdict: every branch that reads one of its verdicts, alone or
    negated, is left out (greyed in JupyterLab); the others are as with every task done."""
    results = course_results()
    names = {**namespace(results), waiting: NotRun(f"task{waiting[1]}")}
    kept = render(evaluated(REPORT, names))
    every = render(evaluated(REPORT, namespace(results)))
    ids, ids_every = ({c["id"] for c in book["cells"]} for book in (kept, every))
    branches = [(c["id"], BRANCH.match("".join(c["source"]))[1]) for c in REPORT["cells"]
                if c["cell_type"] == "markdown" and BRANCH.match("".join(c["source"]))]
    reading = [cell for cell, condition in branches if f"{waiting}." in condition]
    assert reading and not any(cell in ids for cell in reading)
    assert all((cell in ids) == (cell in ids_every) for cell, condition in branches if f"{waiting}." not in condition)
