"""The report's experiments: one frozen, checked configuration per task notebook, and its runs.

A task notebook's `parameters` cell is the one source of its defaults (the shipped cells hold the course's values,
COURSE_2022); `Config.from_namespace(globals())` picks them up and checks them (types, ranges), and `as_dict` goes
into the results file. `make report` reads the same cell (tools/params.py) and applies PARAMS, SEED, DATASET.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import threadpoolctl

from mnist import CLASS_NAMES, DATASETS, NUM_TRAIN
from support import fetch, handoff
from support.blanks import unwritten
from support.engine import FastEngine
from support.progress import Bar, counted
from support.project import TASK_SPECS
from support.results import modules_digest, sha256_json
from support.sources import notebook_parameters
from trainer import TrainResult, train
from utils import (
    GRADIENT_CHECK_EPSILON,
    BinaryModel,
    LinearModel,
    SoftmaxModel,
    gradient_check,
    load_binary_dataset,
    load_full_mnist,
    pre_process_images,
)

NAME_OR_INDEX = {"class1", "class2"}
MAX_SEED = 2**32 - 1  # numpy.random.RandomState's largest seed
ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class _Config:
    """Shared fields and checks; subclasses add the task's hyperparameters. No defaults here: the values come from the
    task notebook's parameters cell (its one source of defaults), with PARAMS, SEED or DATASET overriding names."""

    dataset: str  # "mnist", "fashion-mnist", or "synthetic" for smoke runs without a download
    train_size: int  # the first images of the training set; validation = the test set
    batch_size: int
    dtype: str  # of the training runs; the gradient checks are float64 always
    gradient_check_seed: int  # draws the random weights of the gradient check
    gradient_check_examples: int

    def __post_init__(self):
        for name, hint in typing.get_type_hints(type(self)).items():
            if name == "task":
                continue
            value = getattr(self, name)
            if isinstance(value, list) and hint is tuple:  # JSON gives lists for tuples
                value = tuple(value)
                object.__setattr__(self, name, value)
            if not _is_a(value, hint):
                expected = " or ".join("None" if a is type(None) else a.__name__ for a in typing.get_args(hint) or
                                       (hint,))
                raise TypeError(f"{type(self).__name__}.{name} must be {expected}, received {shown(value)}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, received {shown(self.dataset)}")
        self._check_ranges()
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', received {shown(self.dtype)}")
        names = CLASS_NAMES[self.dataset]
        pair = [getattr(self, name) for name in sorted(NAME_OR_INDEX & {f.name for f in dataclasses.fields(self)})]
        for name, value in zip(sorted(NAME_OR_INDEX), pair):
            if (isinstance(value, str) and value not in names) or (isinstance(value, int) and not 0 <= value < 10):
                raise ValueError(f"{name} must be a class index 0..9 or one of {names} for {self.dataset}, "
                                 f"received {shown(value)}")
        if len(pair) == 2 and len({names.index(v) if isinstance(v, str) else v for v in pair}) == 1:
            raise ValueError(f"class1 and class2 must be two different classes, received {shown(pair[0])} and "
                             f"{shown(pair[1])}")

    def _check_ranges(self) -> None:
        """ValueError naming the first field outside its range, the value received and the valid range."""
        most = NUM_TRAIN[self.dataset]

        def need(name: str, ok: bool, valid: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {valid}, received {shown(getattr(self, name))}")

        need("train_size", 1 <= self.train_size <= most, f"an integer in [1, {most}] for {self.dataset}")
        need("batch_size", 1 <= self.batch_size <= self.train_size, f"an integer in [1, train_size={self.train_size}]")
        need("gradient_check_examples", 1 <= self.gradient_check_examples <= self.train_size,
             f"an integer in [1, train_size={self.train_size}]")
        for name in ("gradient_check_seed", "shuffle_seed"):  # what numpy's RandomState and default_rng take
            if hasattr(self, name):
                need(name, 0 <= getattr(self, name) <= MAX_SEED, f"an integer in [0, {MAX_SEED}]")
        if hasattr(self, "learning_rate"):
            need("learning_rate", math.isfinite(self.learning_rate) and self.learning_rate > 0, "a finite number > 0")
        for name in ("num_epochs", "num_epochs_early_stopping"):
            if hasattr(self, name):
                need(name, 1 <= getattr(self, name) <= 100000, "an integer in [1, 100000]")
        if hasattr(self, "shuffle_order"):
            need("shuffle_order", self.shuffle_order in SHUFFLE_ORDERS, f"one of {', '.join(SHUFFLE_ORDERS)}")
        if hasattr(self, "shuffle_seed_runs"):
            need("shuffle_seed_runs", 0 <= self.shuffle_seed_runs <= 1000, "an integer in [0, 1000]")
        if getattr(self, "early_stopping_patience", None) is not None:
            need("early_stopping_patience", self.early_stopping_patience >= 1, "an integer >= 1 (checks), or None")
        for name in ("lambdas", "weight_image_lambdas"):
            if hasattr(self, name):
                values = getattr(self, name)
                need(name, len(values) >= 1 and all(math.isfinite(v) and v >= 0 for v in values)
                     and len(set(map(float, values))) == len(values),
                     "a non-empty list of different finite numbers >= 0, such as [2, 0.2]")

    @classmethod
    def from_namespace(cls, namespace: dict):
        """The configuration from a notebook's globals (its parameters cell, which sets every field)."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in namespace]
        if missing:
            raise TypeError(f"{cls.task}.ipynb's parameters cell sets no {', '.join(missing)}: add "
                            f"{'them' if len(missing) > 1 else 'it'} (COURSE_2022 in experiments.py has the course's "
                            "values)")
        return cls(**{f.name: namespace[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def from_notebook(cls, path: str | Path | None = None, **overrides):
        """The configuration of the notebook's parameters cell (default: the task's notebook), with `overrides`."""
        return cls.from_namespace({**notebook_parameters(path or ROOT / f"{cls.task}.ipynb"), **overrides})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def changed(self) -> dict:
        """The fields whose values differ from the course's (COURSE_2022), whatever the notebook's defaults are."""
        course = COURSE_2022[self.task]
        return {k: v for k, v in self.as_dict().items() if k not in course or v != course[k]}

    def as_course(self) -> bool:
        """Whether this run is the course's (every value as COURSE_2022 has it): only then do the official
        solution's numbers compare with it."""
        return not self.changed()


def shown(value, most: int = 60) -> str:
    """repr(value), shortened to about `most` characters (a value echoed in an error message)."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most - 20]}...{text[-8:]} ({len(text)} characters)"


def _is_a(value, hint) -> bool:
    """Whether `value` fits the annotation `hint` (int, float, str, tuple of numbers, or a union of them)."""
    if typing.get_args(hint) and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_a(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    if hint is tuple:
        return isinstance(value, tuple) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return isinstance(value, hint)


@dataclass(frozen=True)
class Task2Config(_Config):
    task: ClassVar[str] = "task2"
    class1: int | str  # label 1: a class index, or a class name such as "Pullover" for fashion-mnist
    class2: int | str  # label 0
    learning_rate: float
    num_epochs: int  # 2b, 2c
    num_epochs_early_stopping: int  # 2d, 2e
    early_stopping_patience: int | None  # validation checks without a lower validation loss; None: never stop
    shuffle_seed: int  # the shuffled run of 2e
    shuffle_order: str  # "course" (RandomState, as the course's batch_loader) or "generator"
    shuffle_seed_runs: int  # 2e again with the seeds 0, 1, ... of this many runs: how much the stop moves


@dataclass(frozen=True)
class Task3Config(_Config):
    task: ClassVar[str] = "task3"
    learning_rate: float
    num_epochs: int
    early_stopping_patience: int | None  # as the course's trainer, in every run; None trains all epochs
    shuffle_seed: int
    shuffle_order: str


@dataclass(frozen=True)
class Task4Config(_Config):
    task: ClassVar[str] = "task4"
    learning_rate: float
    num_epochs: int
    early_stopping_patience: int | None
    shuffle_seed: int
    shuffle_order: str
    lambdas: tuple  # 4c, 4e; lambda = 0 is trained too, for 4b
    weight_image_lambdas: tuple  # 4b


SHUFFLE_ORDERS = ("course", "generator")
# The course's values (TDT4265, 2022: the assignment text, its starter code and solution), held apart from this
# code's defaults. Where the course leaves a setting open ("ours"), the value with which this project reproduces
# the solution's numbers. The report lists every value that differs from these and compares its numbers with the
# official solution's only when none does.
_COMMON = {"dataset": "mnist", "train_size": 20000, "batch_size": 128,
           "dtype": "float32", "gradient_check_seed": 0, "gradient_check_examples": 100}  # dtype, seed: ours
COURSE_2022 = {
    "task2": {**_COMMON, "class1": 2, "class2": 3, "learning_rate": 0.05, "num_epochs": 50,
              "num_epochs_early_stopping": 500, "early_stopping_patience": 10, "shuffle_seed": 0,
              "shuffle_order": "course", "shuffle_seed_runs": 20},  # shuffle_seed_runs: ours
    "task3": {**_COMMON, "learning_rate": 0.01, "num_epochs": 50, "early_stopping_patience": 10, "shuffle_seed": 0,
              "shuffle_order": "course"},
    "task4": {**_COMMON, "learning_rate": 0.01, "num_epochs": 50, "early_stopping_patience": 10, "shuffle_seed": 0,
              "shuffle_order": "course", "lambdas": (2.0, 0.2, 0.02, 0.002), "weight_image_lambdas": (0.0, 2.0)},
}
# What the course's published solution for 2022 (assignment1/solution/ of its starter code: the solution PDF)
# reports for the default parameters on MNIST; 4e's norms are read off its plot, so they are approximate.
OFFICIAL_2022 = {"task2d_stop_epoch": 33, "task2e_stop_epoch": 16,
                 "task4e_squared_norms": {2.0: 0.35, 0.2: 2.7, 0.02: 10.6, 0.002: 21.4}}


def shuffle_rng(cfg: _Config, seed: int | None = None) -> np.random.RandomState | np.random.Generator:
    """The shuffle order's generator for `seed` (default: cfg.shuffle_seed).

    "course": numpy.random.RandomState(seed), from which `batch_indices` shuffles a fresh list 0..N-1 every
    epoch: the course's batch_loader does that with numpy's global generator, which its task2.py seeds with 0.
    "generator": numpy.random.default_rng(seed) and its permutations.
    """
    seed = cfg.shuffle_seed if seed is None else seed
    return np.random.RandomState(seed) if cfg.shuffle_order == "course" else np.random.default_rng(seed)


def fit(model: LinearModel, X_train, Y_train, X_val, Y_val, *, progress: str | None = None,
        share_in: str | None = None, **settings) -> TrainResult:
    """trainer.train with the fast engine (support/engine.py), BLAS on one thread (the checks' threads use the
    cores; no bit of a result depends on their number), and a progress bar named `progress` (None: none).

    With `share_in` (the data set's name, whose build folder holds shared runs): a run shared under the digest of
    all this one is made of (run_key) is taken instead of training, the model's weights and the generator's state
    set as training would leave them; else the run is trained and shared. So a notebook whose run is another's
    computation takes it (Task 4's lambda = 0 run is Task 3's), whatever setting a future change adds.
    """
    data = (X_train, Y_train, X_val, Y_val)
    key = run_key(model, data, settings) if share_in else None
    if key and (taken := handoff.take_run(key, share_in)) is not None:
        record, arrays = taken
        model.w[...] = arrays["w"]
        _set_state(settings.get("rng"), record["rng_after"])
        return TrainResult(**record["result"])
    bar = (lambda total: Bar(progress, total)) if progress else None
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        result = train(model, *data, engine=FastEngine, progress=bar, **settings)
    if key:
        handoff.share_run(key, {"w": model.w}, {"result": result.to_dict(), "rng_after": _state(settings.get("rng"))},
                          share_in)
    return result


def run_key(model: LinearModel, data: tuple, settings: dict) -> str:
    """SHA-256 of all a run is made of: the model's class, L2 lambda and starting weights, the data's bytes, every
    setting, the shuffling generator's state, and the code that trains (every module this one imports)."""
    digest = [hashlib.sha256(np.ascontiguousarray(a)).hexdigest() for a in (model.w, *data)]
    return sha256_json({"model": [type(model).__name__, model.l2_reg_lambda, str(model.w.dtype)], "arrays": digest,
                        "settings": {k: v for k, v in settings.items() if k != "rng"},
                        "rng": _state(settings.get("rng")), "code": modules_digest(Path(__file__).name)})


def _state(rng) -> object:
    """A generator's state as plain data (a RandomState's array as a list), None for none."""
    if isinstance(rng, np.random.RandomState):
        kind, keys, pos, has_gauss, gauss = rng.get_state()
        return [kind, keys.tolist(), pos, has_gauss, gauss]
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else None


def _set_state(rng, state) -> None:
    if isinstance(rng, np.random.RandomState):
        rng.set_state((state[0], np.array(state[1], dtype=np.uint32), *state[2:]))
    elif isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state


def _gradient_check(model: LinearModel, X_raw: np.ndarray, targets: np.ndarray, seed: int) -> dict:
    """Centred-difference check in float64 on the first images, at random weights of standard deviation 1/sqrt(D)
    (D inputs): logits of order one, so the outputs are neither saturated nor uniform."""
    std = 1 / np.sqrt(model.w.shape[0])
    model.w = np.random.default_rng(seed).normal(scale=std, size=model.w.shape)
    worst = gradient_check(model, pre_process_images(X_raw, np.float64), targets)
    return {"max_abs_difference": worst, "tolerance": GRADIENT_CHECK_EPSILON**2, "epsilon": GRADIENT_CHECK_EPSILON,
            "num_weights": model.w.size, "num_examples": len(X_raw), "seed": seed, "weight_std": std,
            "num_inputs": model.w.shape[0]}


def attempt(pending: dict, tasks: list[str], compute):
    """compute(), or None when it runs into a blank of the student version (support/blanks.py): then each of `tasks`
    is pending, for what the blank says ({task: "Task 2b: BaseTrainer.train_step is not written yet (trainer.py:NN)"},
    the first reason kept). Any other error goes on up: it stops the notebook, as it should."""
    try:
        return compute()
    except NotImplementedError as exc:
        blank = unwritten(exc)
        if blank is None:
            raise
        for task in tasks:
            pending.setdefault(task, str(blank))
        return None


def ready(out: dict, *tasks: str) -> bool:
    """In a task notebook: whether the parts of `tasks` ran; if not, it says which is pending and why."""
    waiting = [task for task in tasks if task in out["pending"]]
    for task in waiting:
        print(f"Task {task} is pending: {out['pending'][task]}")
    return not waiting


def run_task2(cfg: Task2Config, progress: bool = False) -> dict:
    """2a gradient check; 2b/2c 50 epochs; 2d 500 epochs with early stopping; 2e the same with shuffling. A part that
    runs into a blank of the student version is left out and its tasks are listed in "pending" (attempt)."""
    names = CLASS_NAMES[cfg.dataset]
    class1, class2 = (names.index(c) if isinstance(c, str) else c for c in (cfg.class1, cfg.class2))
    fetch.ensure(cfg.dataset)
    X_raw, Y_train, X_val_raw, Y_val = load_binary_dataset(class1, class2, train_size=cfg.train_size,
                                                           dataset=cfg.dataset)
    pending: dict[str, str] = {}
    n = cfg.gradient_check_examples
    check = attempt(pending, ["2a"], lambda: _gradient_check(BinaryModel(), X_raw[:n], Y_train[:n].astype(np.float64),
                                                             cfg.gradient_check_seed))
    data = attempt(pending, ["2a", "2b", "2c", "2d", "2e"], lambda: (
        pre_process_images(X_raw, cfg.dtype), Y_train, pre_process_images(X_val_raw, cfg.dtype), Y_val))
    common = dict(learning_rate=cfg.learning_rate, batch_size=cfg.batch_size)
    plain_model = BinaryModel(dtype=cfg.dtype)
    early = dict(common, num_epochs=cfg.num_epochs_early_stopping, early_stopping_patience=cfg.early_stopping_patience)
    runs, spread, seeds = {}, None, list(range(cfg.shuffle_seed_runs))
    if data is not None:
        for name, tasks, model, settings, label in (
                ("plain", ["2b", "2c"], plain_model, dict(common, num_epochs=cfg.num_epochs), "2b, 2c"),
                ("early_stopping", ["2d"], BinaryModel(dtype=cfg.dtype), early, "2d"),
                ("early_stopping_shuffled", ["2e"], BinaryModel(dtype=cfg.dtype),
                 dict(early, shuffle=True, rng=shuffle_rng(cfg)), "2e, shuffled")):
            run = attempt(pending, tasks, lambda m=model, s=settings, lb=label: fit(m, *data, **s,
                                                                                    progress=progress and lb))
            if run is not None:
                runs[name] = run
        sweep = Bar(f"2e, seeds 0 to {seeds[-1]}", len(seeds), unit="run") if progress and seeds and runs else None
        spread = attempt(pending, ["2e"], lambda: [fit(BinaryModel(dtype=cfg.dtype), *data, **early, shuffle=True,
                                                       rng=shuffle_rng(cfg, seed)) for seed in counted(seeds, sweep)])
        if sweep is not None:
            sweep.done() if spread is not None else sweep.close()
    out = {"runs": runs, "data": _sizes(X_raw, X_val_raw), "class_names": [names[class1], names[class2]],
           "validation": (X_val_raw, Y_val[:, 0]), "pending": pending, "weights": {}}
    if check is not None:
        out["gradient_check"] = check
    if "plain" in runs:
        out["weights"]["plain"] = plain_model.w
    if spread is not None:
        out["shuffle_seeds"] = {"seeds": seeds, "stop_epochs": [r.stop_epoch for r in spread],
                                "stopped_early": [r.stopped_early for r in spread],
                                "val_accuracy": [r.final["val_accuracy"] for r in spread]}
    return out


def _softmax_data(cfg: _Config, pending: dict, tasks: list[str]):
    """(raw training images, raw validation images, labels (N,) of each, and the four arrays training takes, or None
    when pre_process_images is a blank: then `tasks` are pending)."""
    fetch.ensure(cfg.dataset)
    X_raw, Y_train, X_val_raw, Y_val = load_full_mnist(train_size=cfg.train_size, dataset=cfg.dataset)
    Y_train, Y_val = Y_train[:, 0], Y_val[:, 0]  # labels (N,): the loss picks each row's probability without one-hot
    data = attempt(pending, tasks, lambda: (pre_process_images(X_raw, cfg.dtype), Y_train,
                                            pre_process_images(X_val_raw, cfg.dtype), Y_val))
    return X_raw, X_val_raw, (Y_train, Y_val), data


def run_task3(cfg: Task3Config, progress: bool = False) -> dict:
    """3a gradient check; 3b-3d softmax regression with shuffling (shared: Task 4 takes it as its lambda = 0 run when
    it is the same computation). Parts that run into a blank are "pending" (attempt)."""
    pending: dict[str, str] = {}
    X_raw, X_raw_val, (labels, val_labels), data = _softmax_data(cfg, pending, ["3a", "3b", "3c", "3d"])
    n = cfg.gradient_check_examples
    check = attempt(pending, ["3a"], lambda: _gradient_check(SoftmaxModel(), X_raw[:n], labels[:n],
                                                             cfg.gradient_check_seed))
    model = SoftmaxModel(dtype=cfg.dtype)
    result = data and attempt(pending, ["3b", "3c", "3d"], lambda: fit(
        model, *data, learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, num_epochs=cfg.num_epochs,
        shuffle=True, rng=shuffle_rng(cfg), early_stopping_patience=cfg.early_stopping_patience,
        progress=progress and "3", share_in=cfg.dataset))
    out = {"runs": {}, "weights": {}, "data": _sizes(X_raw, X_raw_val), "validation": (X_raw_val, val_labels),
           "pending": pending}
    if check is not None:
        out["gradient_check"] = check
    if result is not None:
        out["runs"]["softmax"], out["weights"]["softmax"] = result, model.w
    return out


def run_task4(cfg: Task4Config, progress: bool = False) -> dict:
    """4a gradient check with L2; one softmax run per lambda (and lambda = 0), reused by 4b, 4c and 4e.

    lambda = 0's turn comes last, shared: Task 3's run, when it is the same computation, replaces training it (a
    build may still be making it beside this one).
    """
    pending: dict[str, str] = {}
    later = ["4b", "4c", "4d", "4e"]  # what the runs answer
    X_raw, X_raw_val, (labels, _), data = _softmax_data(cfg, pending, ["4a", *later])
    n = cfg.gradient_check_examples
    check = attempt(pending, ["4a"], lambda: _gradient_check(SoftmaxModel(l2_reg_lambda=max(cfg.lambdas)), X_raw[:n],
                                                             labels[:n], cfg.gradient_check_seed))
    runs: dict[str, TrainResult] = {}
    weights: dict[str, np.ndarray] = {}
    for lam in sorted({0.0, *map(float, cfg.lambdas), *map(float, cfg.weight_image_lambdas)}, reverse=True):
        if data is None or pending.keys() & set(later):
            break  # a blank stops every run alike
        model = SoftmaxModel(l2_reg_lambda=lam, dtype=cfg.dtype)
        run = attempt(pending, later, lambda m=model, lam=lam: fit(
            m, *data, learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, num_epochs=cfg.num_epochs,
            shuffle=True, rng=shuffle_rng(cfg), early_stopping_patience=cfg.early_stopping_patience,
            progress=progress and f"4, lambda = {lam:g}", share_in=cfg.dataset if lam == 0 else None))
        if run is not None:
            runs[repr(lam)], weights[repr(lam)] = run, model.w
    if pending.keys() & set(later):
        runs, weights = {}, {}
    norms = {key: float(np.sum(w.astype(np.float64) ** 2)) for key, w in weights.items()}
    max_abs = {key: float(np.max(np.abs(w[:-1]))) for key, w in weights.items()}  # pixel weights, bias row excluded
    runs = {key: runs[key] for key in sorted(runs, key=float, reverse=True)}
    out = {"runs": runs, "weights": weights, "squared_norms": norms, "max_abs_pixel_weight": max_abs,
           "data": _sizes(X_raw, X_raw_val), "pending": pending}
    if check is not None:
        out["gradient_check"] = check
    return out


def _sizes(X_train: np.ndarray, X_val: np.ndarray) -> dict:
    return {"num_train": len(X_train), "num_val": len(X_val)}


TASK_CONFIGS = {task: globals()[spec["config"]] for task, spec in TASK_SPECS.items()}  # pyproject.toml's task list
