"""The student's side of the checks: each probe calls one function a student writes on the inputs it is given and
returns what came back as plain data, with where it happened; it judges nothing and holds none of the assignment's
definitions or expected values. `make check` runs the probes in its own process; `make grade` in the hand-in's
process, which gets its inputs (drawn from a seed it never sees) and sends its answers back as JSON (grading/).
numpy and the standard library alone.
"""

from __future__ import annotations

import inspect
import linecache
import re
import sys
from pathlib import Path

import numpy as np

from support.blanks import unwritten

# ---------------------------------------------------------------- the wire: arrays as JSON, exactly


def encode(value):
    """Arrays as {"array": nested lists, "shape", "dtype"}, numpy scalars as Python's: JSON carries it exactly."""
    if isinstance(value, np.ndarray):
        kind = value.dtype if value.dtype.kind in "biuf" else np.dtype(np.float64)
        return {"array": value.astype(kind).tolist(), "shape": list(value.shape), "dtype": str(kind)}
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value):
    """encode's inverse: arrays back, of their dtype (float64 for one that does not say)."""
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"], dtype=value.get("dtype", "float64")).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def returned(value) -> dict:
    """What a student's function returned, as data: an array (or number) as float64, else its type's name."""
    if isinstance(value, (np.ndarray, np.floating, np.integer, float, int)) and not isinstance(value, bool):
        try:
            return {"value": encode(np.asarray(value, dtype=np.float64))}
        except (TypeError, ValueError):
            pass
    return {"type": type(value).__name__}


# ---------------------------------------------------------------- where: the function checked, its file and line


def function_in(modules: dict, function: str):
    """The student's function named "module:Qualified.name"."""
    module, name = function.split(":")
    target = modules[module]
    for part in name.split("."):
        target = getattr(target, part)
    return target


class LineTracer:
    """The lines run inside one function (its code object), while it is on."""

    def __init__(self, code):
        self.code, self.lines = code, []

    def __enter__(self):
        self.previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(self.previous)

    def where(self) -> dict:
        """{"line": the last line run that computes (not a bare `return name`), "first_line": the first line run}."""
        computing = [n for n in self.lines
                     if not re.fullmatch(r"return\s+[\w.]+", linecache.getline(self.code.co_filename, n).strip())]
        return {"line": (computing or self.lines or [None])[-1], "first_line": (self.lines or [None])[0]}

    def _global(self, frame, event, arg):
        return self._local if frame.f_code is self.code else None

    def _local(self, frame, event, arg):
        if event == "line" and frame.f_lineno not in self.lines[-1:]:
            self.lines.append(frame.f_lineno)
        return self._local


def _code_of(function):
    function = inspect.unwrap(function.fget if isinstance(function, property) else function)
    return getattr(function, "__code__", None)


def student_files(modules: dict, root: Path) -> dict[str, str]:
    """{absolute file: its name relative to `root`} of the student's modules (that have a file)."""
    found = {}
    for module in modules.values():
        try:
            path = Path(inspect.getsourcefile(module) or "?").resolve()
        except TypeError:  # a module made in memory
            continue
        found[str(path)] = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return found


def _student_frame(exc: BaseException, files: dict) -> tuple[str, int | None, str]:
    """(file, line, function) of the innermost frame of the traceback in the student's files."""
    found = ("", None, "")
    tb = exc.__traceback__
    while tb is not None:
        name = files.get(str(Path(tb.tb_frame.f_code.co_filename).resolve()))
        if name:
            found = (name, tb.tb_lineno, tb.tb_frame.f_code.co_qualname)
        tb = tb.tb_next
    return found


def import_failure(exc: BaseException, folder: Path) -> dict:
    """The answer to every probe when the student's modules do not import: the error and where it was raised."""
    file, line = "", None
    tb = exc.__traceback__
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename).resolve()
        if path.parent == folder.resolve():
            file, line = path.name, tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename:
        file, line = Path(exc.filename).name, exc.lineno
    return {"error": f"{type(exc).__name__}: {exc}"[:400] + " (when the module is imported)", "file": file,
            "line": line}


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def answer(probe: str, function: str, modules: dict, inputs: dict, root: Path) -> dict:
    """Run the probe named `probe` on the student's `function` ("module:Qualified.name"): {"data": ...}, or
    {"blank": {task, function}} (a blank of the student version), or {"error": ...}; with "file" and "line" (where it
    raised, or the last line it ran in the function) and "first_line". Plain data, for a judge anywhere."""
    files = student_files(modules, root)
    try:
        code = _code_of(function_in(modules, function))
    except AttributeError as exc:
        return {"error": f"{function.split(':')[1]} is missing: {exc}", "file": "", "line": None}
    tracer = LineTracer(code) if code is not None else None
    try:
        with np.errstate(all="ignore"), (tracer or _Nothing()):
            data = PROBES[probe](modules, inputs)
        where = {"file": files.get(str(Path(code.co_filename).resolve()), ""), **tracer.where()} if code else {}
        return {"data": encode(data), **where}
    except Exception as exc:  # the student's code may raise anything: that is what the check reports
        blank = unwritten(exc)
        file, line, name = _student_frame(exc, files)
        if blank is not None:
            return {"blank": {"task": blank.task, "function": blank.function}, "file": file or blank.file,
                    "line": line or blank.line}
        return {"error": f"{type(exc).__name__}: {exc}"[:400], "file": file, "line": line, "in": name}


# ---------------------------------------------------------------- the probes: (modules, inputs) -> data


def pre_process(m, i):
    return returned(m["utils"].pre_process_images(i["X"].copy()))


def sigmoid(m, i):
    return returned(m["utils"].sigmoid(i["z"].copy()))


def forward(m, i):
    """BinaryModel's forward at the weights given (the course's check: at zero weights, when none are given)."""
    model = m["utils"].BinaryModel()
    if "w" in i:
        model.w = i["w"].copy()
    return returned(model.forward(i["X"].copy()))


def loss(m, i):
    return returned(m["utils"].cross_entropy_loss(i["targets"].copy(), i["outputs"].copy()))


def gradient(m, i):
    """The loss_gradient of the model named in the inputs ("BinaryModel", "SoftmaxModel") at the weights given."""
    model = getattr(m["utils"], i["model"])()
    model.w = i["w"].copy()
    return returned(model.loss_gradient(i["X"].copy(), i["outputs"].copy(), i["targets"].copy()))


def one_hot(m, i):
    return {"labels": returned(m["utils"].one_hot_encode(i["labels"].astype(int).copy(), i["classes"])),
            "course": returned(m["utils"].one_hot_encode(np.array([[3]]), 10))}


def softmax(m, i):
    return returned(m["utils"].softmax(i["z"].copy()))


def l2(m, i):
    """backward of a SoftmaxModel whose loss_gradient is the harness's (a fixed matrix): what backward adds is L2."""
    class Probe(m["utils"].SoftmaxModel):
        def loss_gradient(self, X, outputs, targets):
            return i["data_gradient"].copy()

    model = Probe(l2_reg_lambda=float(i["lambda"]))
    model.w = i["w"].copy()
    model.backward(i["X"].copy(), i["outputs"].copy(), i["targets"].copy())
    return returned(model.grad)


def accuracy(m, i):
    return returned(m["utils"].accuracy(i["targets"].copy(), i["outputs"].copy()))


def course_gradient(m, i):
    """The course's gradient_approximation_test (its 2a starter file): the student's loss, forward and backward,
    weight by weight."""
    utils = m["utils"]
    model, X, Y, epsilon = utils.BinaryModel(), i["X"].copy(), i["targets"].copy(), 1e-3
    model.w = i["w"].copy()
    worst = {"difference": 0.0}
    for j in range(model.w.shape[0]):
        original = model.w[j, 0]
        model.w[j, 0] = original + epsilon
        cost1 = utils.cross_entropy_loss(Y, model.forward(X))
        model.w[j, 0] = original - epsilon
        cost2 = utils.cross_entropy_loss(Y, model.forward(X))
        model.w[j, 0] = original
        approximation = (cost1 - cost2) / (2 * epsilon)
        model.backward(X, model.forward(X), Y)
        difference = abs(approximation - float(model.grad[j, 0]))
        if not difference <= worst["difference"]:  # NaN too
            worst = {"difference": difference, "index": j, "analytic": float(model.grad[j, 0]),
                     "numeric": float(approximation)}
        model.zero_grad()
    return {"worst": encode(worst)}


def train_step(m, i):
    """train_step of a BaseTrainer around a stand-in model (fixed outputs and gradient) and a stand-in loss (which
    returns the inputs' "loss")."""
    utils, trainer = m["utils"], m["trainer"]
    calls = {"forward": 0, "backward": 0, "loss": 0, "loss_outputs_are_forwards": True}

    class Model:
        def __init__(self):
            self.w, self.grad = i["w"].copy(), None

        def forward(self, X):
            calls["forward"] += 1
            return i["outputs"].copy()

        def backward(self, X, outputs, targets):
            calls["backward"] += 1
            self.grad = i["grad"].copy()

        def zero_grad(self):
            self.grad = None

    def stand_in_loss(targets, outputs):
        calls["loss"] += 1
        calls["loss_outputs_are_forwards"] &= bool(np.array_equal(np.asarray(outputs), i["outputs"]))
        return float(i["loss"])

    modules = {id(module): module for module in (utils, trainer, getattr(trainer, "utils", None)) if module is not None}
    patched = [(module, module.cross_entropy_loss) for module in modules.values()
               if hasattr(module, "cross_entropy_loss")]
    for module, _ in patched:
        module.cross_entropy_loss = stand_in_loss
    try:
        X, Y = i["X"].copy(), i["targets"].copy()
        model = Model()
        step = trainer.BaseTrainer(model, float(i["learning_rate"]), len(X), False, X, Y, X, Y)
        loss_returned = step.train_step(X, Y)
    finally:
        for module, original in patched:
            module.cross_entropy_loss = original
    return {"w": returned(model.w), "loss": returned(loss_returned), "calls": calls}


def early_stop(m, i):
    """should_early_stop's answer to each case: validation losses at checks 31 steps apart, and num_steps."""
    rule = m["trainer"].should_early_stop
    return {"answers": [bool(rule({31 * n: float(value) for n, value in enumerate(losses)}, int(num_steps)))
                        for losses, num_steps in i["cases"]]}


def shuffle(m, i):
    """batch_indices' shuffled batches, epoch after epoch, from a RandomState and from a Generator of the seed."""
    utils, seed = m["utils"], int(i["seed"])
    rngs = {"course": np.random.RandomState(seed), "generator": np.random.default_rng(seed)}
    return {kind: [[np.asarray(b).tolist() for b in utils.batch_indices(int(i["n"]), int(i["batch_size"]),
                                                                         shuffle=True, rng=rng)]
                   for _ in range(int(i["epochs"]))] for kind, rng in rngs.items()}


PROBES = {name: function for name, function in list(globals().items()) if name in (
    "pre_process", "sigmoid", "forward", "loss", "gradient", "one_hot", "softmax", "l2", "accuracy",
    "course_gradient", "train_step", "early_stop", "shuffle")}
