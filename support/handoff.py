"""Where a task notebook writes, and the one run it may take from another: the only place a notebook meets the build.

Run from Jupyter, a notebook writes its figures, results and shared runs into the build folder of its data set
(build/, or build/<dataset>/), as `make report` publishes them. Run by `make report`, it writes into the staging
folder that the build names in the environment, and the build publishes what checks out.

Task 3's softmax run is the same computation as Task 4's lambda = 0 run when their settings and code agree: Task 3
shares it, Task 4 takes it instead of training it again. While a build runs both at once, Task 4 waits for the
run as long as the build says it is coming (a file that exists while Task 3 runs).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np

from support.fileio import atomic_write
from support.results import modules_digest

ROOT = Path(__file__).resolve().parent.parent
OUT_ENV = "TDT4265_OUT_DIR"  # set by the build: where this notebook's outputs go (a staging folder)
SHARED_ENV = "TDT4265_SHARED_DIR"  # set by the build: the build folder, where shared runs are published
WAIT_ENV = "TDT4265_WAIT_FOR"  # set by the build: a file that exists while the shared run is still being made
RESULTS_ENV = "TDT4265_RESULTS_DIR"  # set by the build for the report: the results folder it reads
KEYS_ENV = "TDT4265_EXPECTED_KEYS"  # and, as JSON, {task: fingerprint key} of the results it asks for
PARAMETERS_ENV = "TDT4265_EXPECTED_PARAMETERS"  # and {task: the parameters of that key}, to name what differs


def build_dir(dataset: str = "mnist") -> Path:
    """The build folder of a data set, as `make report` uses it: build/ for MNIST, build/<dataset>/ otherwise."""
    return ROOT / "build" if dataset == "mnist" else ROOT / "build" / dataset


def out_dir(dataset: str = "mnist") -> Path:
    """Where a notebook writes figures/, results/ and models/: the build's staging folder, or the build folder."""
    return Path(os.environ.get(OUT_ENV) or build_dir(dataset))


def report_inputs(dataset: str = "mnist") -> tuple[Path, dict[str, str], dict[str, dict]]:
    """(the results folder the report reads, {task: the fingerprint key the build asks for}, {task: its
    parameters}): the build's, or from Jupyter build/results/, {} and {} (whatever parameters the task notebooks last
    ran with)."""
    folder = os.environ.get(RESULTS_ENV)
    asked = [json.loads(os.environ.get(name) or "{}") for name in (KEYS_ENV, PARAMETERS_ENV)]
    return (Path(folder) if folder else build_dir(dataset) / "results"), *asked


def share_run(name: str, arrays: dict[str, np.ndarray], meta: dict, settings: dict, made_by: str | Path) -> Path:
    """Save a run (its arrays and meta) under `name` with the settings and code that made it (`made_by`: the module,
    with what it imports); written through a temporary file and a rename."""
    record = {"settings": settings, "code": modules_digest(Path(made_by).resolve().relative_to(ROOT)), "meta": meta}
    buffer = io.BytesIO()
    np.savez(buffer, record=np.array(json.dumps(record)), **arrays)
    return atomic_write(out_dir(settings.get("dataset", "mnist")) / "models" / f"{name}.npz", buffer.getvalue())


def take_run(name: str, settings: dict, made_by: str | Path,
             poll_seconds: float = 0.1) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(meta, arrays) of the run shared under `name` if its settings and code are these, else None; while the build
    says the run is coming, waits for it."""
    shared = Path(os.environ.get(SHARED_ENV) or build_dir(settings.get("dataset", "mnist")))
    path, waiting = shared / "models" / f"{name}.npz", os.environ.get(WAIT_ENV)
    code = modules_digest(Path(made_by).resolve().relative_to(ROOT))
    seen, run = _stamp(path), _load(path, settings, code)
    while run is None and waiting and Path(waiting).exists():
        time.sleep(poll_seconds)
        if _stamp(path) != seen:  # read again only a file written since (an old run's may sit there meanwhile)
            seen, run = _stamp(path), _load(path, settings, code)
    return run if run is not None else _load(path, settings, code)  # it may have come just before the file went


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is replaced (written to a temporary name and renamed) or written; None if absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _load(path: Path, settings: dict, code: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
        record = json.loads(str(arrays.pop("record")))
    except (OSError, KeyError, ValueError):
        return None
    if record["settings"] != json.loads(json.dumps(settings)) or record["code"] != code:  # another computation
        return None
    return record["meta"], arrays
