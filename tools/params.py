"""Command-line parameters for the task notebooks: `make report PARAMS="task3.num_epochs=20 task4.lambdas=[1, 0.1]"`.

`resolve(PARAMS, SEED, DATASET)` checks every override against experiments.py's configurations (names, types
and ranges) and returns each notebook's full set of parameters; make.py calls it before any work.

PARAMS: whitespace-separated `task.name=value` items; the value is a Python literal (20, 1e-05, [1, 0.1],
"Coat", None) or a bare word taken as a string; spaces are allowed inside brackets and quotes.
SEED=N sets every task's shuffle_seed; DATASET=name every task's data set (empty: the default, mnist).
"""

from __future__ import annotations

import ast
import dataclasses

from experiments import TASK_CONFIGS
from mnist import DATASETS

# Fashion-MNIST's default pair for Task 2: like 2 vs 3 in MNIST, two classes of similar shape that a linear
# model often confuses, so the curves, early stopping and shuffling have something to show.
DEFAULT_PAIRS = {"fashion-mnist": ("Pullover", "Coat")}
CLOSING = {"[": "]", "(": ")", "{": "}"}


class ParameterError(ValueError):
    """An override names no task or parameter, or has a value its parameter does not accept."""


def split_items(params: str) -> list[str]:
    """PARAMS split at whitespace outside brackets and quotes; ParameterError on an unclosed one."""
    items, current, stack, quote = [], [], [], None
    for char in params:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in CLOSING:
            stack.append(CLOSING[char])
        elif stack and char == stack[-1]:
            stack.pop()
        elif char.isspace() and not stack:
            if current:
                items.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or stack:
        raise ParameterError(f"PARAMS has an unclosed {quote or 'bracket (missing ' + repr(stack[-1]) + ')'}: "
                             f"received {params!r}")
    if current:
        items.append("".join(current))
    return items


def parse(params: str, seed: str = "", dataset: str = "") -> dict[str, dict]:
    """{task: {name: value}} from the PARAMS text and the SEED and DATASET shortcuts; checked."""
    overrides: dict[str, dict] = {task: {} for task in TASK_CONFIGS}
    dataset = dataset.strip()
    if dataset:
        if dataset not in DATASETS:
            raise ParameterError(f"DATASET must be one of {', '.join(DATASETS)} (empty: mnist), received {dataset!r}")
        for task in TASK_CONFIGS:
            overrides[task]["dataset"] = dataset
        for name, value in zip(("class1", "class2"), DEFAULT_PAIRS.get(dataset, ())):
            overrides["task2"][name] = value
        if dataset == "synthetic":  # 3000 training images: a smoke run of the whole report in seconds
            for task in TASK_CONFIGS:
                overrides[task]["train_size"] = 2000
    if seed.strip():
        if not seed.strip().isdigit():
            raise ParameterError(f"SEED must be an integer >= 0, received {seed!r}")
        for task in TASK_CONFIGS:
            overrides[task]["shuffle_seed"] = int(seed)
    given: dict[str, str] = {}  # task.name -> the item that set it
    for item in split_items(params):
        key, sep, text = item.partition("=")
        if key in given:
            raise ParameterError(f"PARAMS sets {key} twice ({given[key]!r} and {item!r}): keep one")
        given[key] = item
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
            if text[:1] in "[({'\"" or not text:
                raise ParameterError(f"{item!r}: {text!r} is not a Python literal (a number, a list such as "
                                     f"[1, 0.1], a quoted string)") from None
            value = text  # a bare word: a string
        overrides[task][name] = value
    return overrides


def resolve(params: str = "", seed: str = "", dataset: str = "") -> dict[str, dict]:
    """{task: every parameter of its notebook} with the overrides applied, each checked; ParameterError if not."""
    resolved = {}
    for task, values in parse(params, seed, dataset).items():
        try:
            resolved[task] = TASK_CONFIGS[task](**values).as_dict()
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{task}.{exc}" if str(exc).split(" ")[0] in values else f"{task}: {exc}") from None
    return resolved
