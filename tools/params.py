"""The task notebooks' parameters for a build: each notebook's parameters cell (the one source of its defaults),
with what `make report PARAMS="<task>.<name>=<value> ..."`, SEED and DATASET override.

`resolve(PARAMS, SEED, DATASET)` reads the cells, applies the overrides (papermill's rule: any name of the cell),
checks every value against experiments.py's configurations (types and ranges) and returns each notebook's full set
of parameters; the build calls it before any work.

PARAMS: whitespace-separated `task.name=value` items; the value is a Python literal (20, 1e-05, [1, 0.1],
"Coat", None) or a bare word taken as a string; spaces are allowed inside brackets and quotes.
SEED=N sets every task's shuffle_seed; DATASET=name every task's data set (empty: the default, mnist).
"""

from __future__ import annotations

import ast
import dataclasses

from experiments import MAX_SEED, TASK_CONFIGS, shown
from mnist import DATASETS
from support.sources import RUN_OPTIONS, notebook_parameters
from tools.common import ROOT

# Fashion-MNIST's default pair for Task 2: like 2 vs 3 in MNIST, two classes of similar shape that a linear
# model often confuses, so the curves, early stopping and shuffling have something to show.
DEFAULT_PAIRS = {"fashion-mnist": ("Pullover", "Coat")}
CLOSING = {"[": "]", "(": ")", "{": "}"}
EXAMPLE = f"{list(TASK_CONFIGS)[-1]}.num_epochs=20"  # a PARAMS item, for messages
MAX_DIGITS = 30  # an integer parameter longer than this is a typo (seeds stop at 10 digits, 2**32 - 1)


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
                             f"received {shown(params)}")
    if current:
        items.append("".join(current))
    return items


def parse(params: str, seed: str = "", dataset: str = "") -> dict[str, dict]:
    """{task: {name: value}} from the PARAMS text and the SEED and DATASET shortcuts; checked."""
    overrides: dict[str, dict] = {task: {} for task in TASK_CONFIGS}
    dataset = dataset.strip()
    if dataset:
        if dataset not in DATASETS:
            raise ParameterError(f"DATASET must be one of {', '.join(DATASETS)} (empty: mnist), received "
                                 f"{shown(dataset)}")
        for task in TASK_CONFIGS:
            overrides[task]["dataset"] = dataset
        pair = dict(zip(("class1", "class2"), DEFAULT_PAIRS.get(dataset, ())))
        for task, config in TASK_CONFIGS.items():  # the tasks of two classes: the data set's pair
            fields = {f.name for f in dataclasses.fields(config)}
            overrides[task].update((name, value) for name, value in pair.items() if name in fields)
        if dataset == "synthetic":  # 3000 training images: a smoke run of the whole report in seconds
            for task in TASK_CONFIGS:
                overrides[task]["train_size"] = 2000
    if seed.strip():
        if not seed.strip().isdigit() or int(seed.strip()[:MAX_DIGITS + 1]) > MAX_SEED:
            raise ParameterError(f"SEED must be an integer in [0, {MAX_SEED}], received {shown(seed)}")
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
            raise ParameterError(f"PARAMS items look like {EXAMPLE}, received {shown(item)}")
        if task not in TASK_CONFIGS:
            raise ParameterError(f"unknown task {task!r} in {item!r}; the tasks are {', '.join(TASK_CONFIGS)}")
        names = list(notebook_defaults(task))
        if name not in names:
            raise ParameterError(f"{task} has no parameter {name!r}; {task}.ipynb's parameters cell sets "
                                 f"{', '.join(names)}")
        digits = text.lstrip("+-").replace("_", "")
        if digits.isdigit() and len(digits) > MAX_DIGITS:
            raise ParameterError(f"{key}: an integer of {len(digits)} digits ({text[:12]}...): no parameter takes one "
                                 f"that large; {task}.ipynb's parameters cell lists what each takes")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            if text[:1] in "[({'\"" or not text:
                raise ParameterError(f"{item!r}: {text!r} is not a Python literal (a number, a list such as "
                                     f"[1, 0.1], a quoted string)") from None
            value = text  # a bare word: a string
        overrides[task][name] = value
    return overrides


def notebook_defaults(task: str) -> dict:
    """{name: value} of `task`.ipynb's parameters cell, less the run options (progress); ParameterError if not read."""
    try:
        values = notebook_parameters(ROOT / f"{task}.ipynb")
    except (OSError, ValueError) as exc:
        raise ParameterError(str(exc)) from None
    fields = [f.name for f in dataclasses.fields(TASK_CONFIGS[task])]
    unknown = [name for name in values if name not in fields and name not in RUN_OPTIONS]
    if unknown:
        raise ParameterError(f"{task}.ipynb's parameters cell sets {', '.join(unknown)}, which experiments."
                             f"{TASK_CONFIGS[task].__name__} does not know: add {'them' if len(unknown) > 1 else 'it'} "
                             "there (with a check), or set it in another cell")
    return {name: value for name, value in values.items() if name not in RUN_OPTIONS}


def resolve(params: str = "", seed: str = "", dataset: str = "") -> dict[str, dict]:
    """{task: every parameter of its notebook}: its parameters cell with the overrides applied, each checked;
    ParameterError naming the parameter, the value, the valid range, and where the value came from."""
    resolved = {}
    for task, overrides in parse(params, seed, dataset).items():
        values = {**notebook_defaults(task), **overrides}
        try:
            config = TASK_CONFIGS[task].from_namespace(values)
        except (TypeError, ValueError) as exc:
            name = str(exc).split(" ")[0].rpartition(".")[2]
            where = "" if name in overrides or name not in values else f" (set in {task}.ipynb's parameters cell)"
            message = f"{task}.{exc}" if str(exc).startswith(name + " ") else f"{task}: {exc}"
            raise ParameterError(message + where) from None
        resolved[task] = config.as_dict()
    datasets = {task: values["dataset"] for task, values in resolved.items()}
    if len(set(datasets.values())) > 1:  # one report, one build folder: of one data set
        listed = ", ".join(f"{task}: {name}" for task, name in datasets.items())
        raise ParameterError(f"every task notebook must use the same data set, received {listed}; DATASET=<name> "
                             "sets them all")
    return resolved
