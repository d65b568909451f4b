"""Command-line parameters for the task notebooks: `make report PARAMS="task3.num_epochs=20 task4.lambdas=[1,0.1]"`.

`python params.py OUT_DIR` reads PARAMS, SEED and DATASET from the environment (make exports them), checks
every override against experiments.py's configurations, and writes OUT_DIR/taskN.json with that notebook's
overrides (papermill's `-f` format) only when its content changes, so make reruns only the notebooks whose
parameters changed. Unknown names and values of the wrong type stop it with the valid names listed.

PARAMS: space-separated `task.name=value`; the value is a Python literal (20, 0.5, [1, 0.1], "Coat") or a
bare word taken as a string. SEED=N sets every task's shuffle_seed; DATASET=name every task's dataset.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from experiments import TASK_CONFIGS
from fileio import atomic_write

# Fashion-MNIST's default pair for Task 2: like 2 vs 3 in MNIST, two classes of similar shape that a linear
# model often confuses, so the curves, early stopping and shuffling have something to show.
DEFAULT_PAIRS = {"fashion-mnist": ("Pullover", "Coat")}


class ParameterError(ValueError):
    """An override names no task or parameter, or has a value its parameter does not accept."""


def parse(params: str, seed: str = "", dataset: str = "") -> dict[str, dict]:
    """{task: {name: value}} from the PARAMS text and the SEED and DATASET shortcuts; checked."""
    overrides: dict[str, dict] = {task: {} for task in TASK_CONFIGS}
    if dataset:
        for task in TASK_CONFIGS:
            overrides[task]["dataset"] = dataset
        for name, value in zip(("class1", "class2"), DEFAULT_PAIRS.get(dataset, ())):
            overrides["task2"][name] = value
    if seed:
        try:
            seed_value = int(seed)
        except ValueError:
            raise ParameterError(f"SEED must be an integer, received {seed!r}") from None
        for task in TASK_CONFIGS:
            overrides[task]["shuffle_seed"] = seed_value
    for item in shlex.split(params):
        key, sep, text = item.partition("=")
        task, dot, name = key.partition(".")
        if not sep or not dot:
            raise ParameterError(f"PARAMS items look like task3.num_epochs=20, received {item!r}")
        if task not in TASK_CONFIGS:
            raise ParameterError(f"unknown task {task!r} in {item!r}; the tasks are {', '.join(TASK_CONFIGS)}")
        fields = [f.name for f in dataclasses.fields(TASK_CONFIGS[task])]
        if name not in fields:
            raise ParameterError(f"{task} has no parameter {name!r}; its parameters are {', '.join(fields)}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word: a string
        overrides[task][name] = value
    for task, values in overrides.items():
        try:
            TASK_CONFIGS[task](**values)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{task}: {exc}") from None
    return overrides


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` (through a temporary file) unless it already holds it; True when written."""
    if path.exists() and path.read_text() == text:
        return False
    atomic_write(path, text.encode())
    return True


def main() -> int:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/params")
    try:
        overrides = parse(os.environ.get("PARAMS", ""), os.environ.get("SEED", ""), os.environ.get("DATASET", ""))
    except ParameterError as exc:
        print(f"error: {exc}. Nothing was run.", file=sys.stderr)
        return 2
    for task, values in overrides.items():
        if write_if_changed(out_dir / f"{task}.json", json.dumps(values, sort_keys=True) + "\n") and values:
            print(f"parameters for {task}: " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
