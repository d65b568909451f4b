"""Where a task notebook writes, which task it is, and the runs it shares: the only place a notebook meets the build.

Run from Jupyter, a notebook writes its figures, results and shared runs into the build folder of its data set
(build/, or build/<dataset>/), as `make report` publishes them. Run by `make report`, it writes into the staging
folder that the build names in the environment, and the build publishes what checks out. A notebook is the task its
file is named after: the build says so in the environment; Jupyter gives the kernel the notebook's path.

A run is shared under the digest of everything it is made of (support.runs.key): another notebook whose run has the
same digest takes it instead of training it again. While a build makes a task's runs, a notebook that waits for it
(pyproject.toml's `waits_for`) waits for a run as long as the build says more are coming (a file that exists meanwhile).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np

from support.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
TASK_ENV = "TDT4265_TASK"  # set by the build: the task notebook that runs
OUT_ENV = "TDT4265_OUT_DIR"  # set by the build: where this notebook's outputs go (a staging folder)
SHARED_ENV = "TDT4265_SHARED_DIR"  # set by the build: the build folder, where shared runs are published
WAIT_ENV = "TDT4265_WAIT_FOR"  # set by the build: a file that exists while the runs waited for are still being made
RESULTS_ENV = "TDT4265_RESULTS_DIR"  # set by the build for the report: the results folder it reads
KEYS_ENV = "TDT4265_EXPECTED_KEYS"  # and, as JSON, {task: fingerprint key} of the results it asks for
PARAMETERS_ENV = "TDT4265_EXPECTED_PARAMETERS"  # and {task: the parameters of that key}, to name what differs


def this_task() -> str:
    """The task of the notebook that runs, its file's name without .ipynb (a copy saved under another name is another
    task): what the build says, else the notebook Jupyter (or VS Code) started the kernel for; RuntimeError if
    neither says."""
    named = os.environ.get(TASK_ENV) or _editor_notebook()
    if not named:
        raise RuntimeError(f"cannot tell which task notebook this is: run it from JupyterLab, VS Code or make report, "
                           f"or set {TASK_ENV} to the notebook's name without .ipynb")
    return Path(named).stem


def in_editor() -> bool:
    """Whether the kernel is one JupyterLab (or VS Code) started for a notebook a person reads, not a build's or an
    export's run."""
    return not os.environ.get(TASK_ENV) and not os.environ.get(RESULTS_ENV) and bool(_editor_notebook())


def _editor_notebook() -> str | None:
    """The notebook JupyterLab (or VS Code) started the kernel for, if one did."""
    if named := os.environ.get("JPY_SESSION_NAME"):
        return named
    try:
        from IPython import get_ipython  # optional: VS Code names the notebook in the kernel's namespace
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns.get("__vsc_ipynb_file__") if shell else None


def build_dir(dataset: str = "mnist") -> Path:
    """The build folder of a data set, as `make report` uses it: build/ for MNIST, build/<dataset>/ otherwise."""
    return ROOT / "build" if dataset == "mnist" else ROOT / "build" / dataset


def out_dir(dataset: str = "mnist") -> Path:
    """Where a notebook writes figures/, results/ and models/: the build's staging folder, or the build folder."""
    return Path(os.environ.get(OUT_ENV) or build_dir(dataset))


def task_dirs(task: str, dataset: str = "mnist") -> tuple[Path, Path]:
    """(figures, results): the folders a task notebook writes into; the task's figures of an earlier run removed, so
    that its results name only the figures this run draws (a part left pending draws none)."""
    figures = out_dir(dataset) / "figures" / task
    for old in figures.glob("*.png"):
        old.unlink(missing_ok=True)
    return figures, out_dir(dataset) / "results"


def report_inputs(dataset: str = "mnist") -> tuple[Path, dict[str, str], dict[str, dict]]:
    """(the results folder the report reads, {task: the fingerprint key the build asks for}, {task: its
    parameters}): the build's, or from Jupyter build/results/, {} and {} (whatever parameters the task notebooks last
    ran with)."""
    folder = os.environ.get(RESULTS_ENV)
    asked = [json.loads(os.environ.get(name) or "{}") for name in (KEYS_ENV, PARAMETERS_ENV)]
    return (Path(folder) if folder else build_dir(dataset) / "results"), *asked


def share_run(key: str, arrays: dict[str, np.ndarray], record: dict, dataset: str) -> Path:
    """Save a run (its arrays, and a record of it as plain data) under `key`, through a temporary file and a rename."""
    buffer = io.BytesIO()
    np.savez(buffer, record=np.array(json.dumps({"key": key, **record})), **arrays)
    return atomic_write(out_dir(dataset) / "models" / f"run-{key[:32]}.npz", buffer.getvalue())


def take_run(key: str, dataset: str, poll_seconds: float = 0.1) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(record, arrays) of the run shared under `key`, or None; while the build says runs are coming, waits for it."""
    path = Path(os.environ.get(SHARED_ENV) or build_dir(dataset)) / "models" / f"run-{key[:32]}.npz"
    waiting = os.environ.get(WAIT_ENV)
    run = _load(path, key)
    while run is None and waiting and Path(waiting).exists():
        time.sleep(poll_seconds)
        run = _load(path, key)
    return run if run is not None else _load(path, key)  # it may have come just before the file went


def _load(path: Path, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        record = json.loads(str(arrays.pop("record")))
    except (OSError, KeyError, ValueError):
        return None
    return (record, arrays) if record.pop("key", None) == key else None
