"""Results files `build/results/taskN.json`: written atomically by the task notebooks, checked when read."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from support.fetch import data_digest
from support.fileio import atomic_write
from support.sources import notebook_code, project_modules

SCHEMA_VERSION = 2
RESULTS_DIR = Path("build/results")
SOURCES_DIR = Path(__file__).resolve().parent.parent
# Packages whose version can change a number or a figure.
VERSIONED = ("numpy", "matplotlib")
REMEDY = "`make report` (or `python make.py report`) runs it again"


class ResultsError(RuntimeError):
    """A results file is missing, partial, altered or not the one asked for: the named notebook must be rerun. The
    message is the problem, then the remedy (`problem: taskN.ipynb must run again: ...`)."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it in a notebook: the message, which says what to do, without the frames."""
        return [f"{type(self).__name__}: {self}"]


def problem_of(message: str) -> str:
    """A ResultsError's message without its remedy: what a build says of results it runs again itself."""
    return re.sub(r": \w+\.ipynb must run again: .*", "", message, flags=re.S)


def _plain(value):
    """json.dump's fallback: numpy scalars and arrays to Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value) -> str:
    """SHA-256 of `value` as canonical JSON (sorted keys, no spaces): equal values give equal digests."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())


def notebook_code_digest(path: str | Path) -> str:
    """SHA-256 of a notebook's code cells, the parameters cells left out (their values are the parameters).

    As jupyter-cache does: outputs, execution counts and Markdown do not count, so saving a notebook from
    Jupyter after a run does not make its results stale.
    """
    return sha256_json(notebook_code(path, skip_tags=frozenset({"parameters", "injected-parameters"})))


@functools.cache  # installed packages do not change under a running process; reading their metadata takes a while
def versions() -> dict:
    """Python's major.minor and the versions of the packages that can change a number or a figure."""
    return {"python": "{}.{}".format(*sys.version_info[:2]), **{name: metadata.version(name) for name in VERSIONED}}


def modules_digest(*paths: str | Path, sources_dir: str | Path = SOURCES_DIR) -> str:
    """SHA-256 of the modules in `paths` and the project's modules that they (or the notebooks in `paths`) import,
    at any depth (found by rule: support/sources.py); changes when any of them does."""
    root = Path(sources_dir).resolve()
    given = [root / p for p in paths]
    modules = {*project_modules(*given, root=root), *(p for p in given if p.suffix == ".py")}
    return sha256_json({p.relative_to(root).as_posix(): sha256_bytes(p.read_bytes()) for p in sorted(modules)})


def fingerprint(task: str, parameters: dict, sources_dir: str | Path = SOURCES_DIR) -> dict:
    """What makes a task's results what they are; its `key` changes when any part does.

    The full parameters, the notebook's code, the modules it imports (at any depth), the data (the digests of its
    verified files) and the package versions. `make report` reruns a notebook when the key of its results file is
    not the one it asks for, whoever wrote the file.
    """
    sources_dir = Path(sources_dir)
    parts = {
        "parameters": sha256_json(parameters),
        "notebook": notebook_code_digest(sources_dir / f"{task}.ipynb"),
        "modules": modules_digest(f"{task}.ipynb", sources_dir=sources_dir),
        "data": data_digest(parameters.get("dataset", "mnist")),
        "versions": versions(),
    }
    return {"key": sha256_json(parts), **parts}


def _sealed(record: dict) -> dict:
    """The record with `content_sha256`, the digest of everything else in it, so that an edit shows."""
    record = json.loads(json.dumps(record, allow_nan=False, default=_plain))
    record.pop("content_sha256", None)
    return {**record, "content_sha256": sha256_json(record)}


def save_results(task: str, parameters: dict, payload: dict, results_dir: str | Path = RESULTS_DIR,
                 sources_dir: str | Path = SOURCES_DIR) -> Path:
    """Write {schema, task, parameters, fingerprint, figures, **payload} to results_dir/task.json, sealed.

    `figures` holds the SHA-256 of each figure file of the task (results_dir/../figures/<task>/), so the
    report can tell that the figures beside the numbers come from the same run. Written via a temporary
    file and a rename.
    """
    figures_dir = Path(results_dir).parent / "figures" / task
    record = {
        "schema": SCHEMA_VERSION,
        "task": task,
        "parameters": parameters,
        "fingerprint": fingerprint(task, parameters, sources_dir),
        "figures": {p.name: sha256_bytes(p.read_bytes()) for p in sorted(figures_dir.glob("*.png"))
                    if not p.name.startswith(".")},
        **payload,
    }
    text = json.dumps(_sealed(record), indent=1, allow_nan=False) + "\n"
    return atomic_write(Path(results_dir) / f"{task}.json", text.encode())


def read_results(path: str | Path) -> dict:
    """The sealed record in `path`; ResultsError if it is missing, not complete JSON, of another schema or altered."""
    path = Path(path)
    task = path.stem
    remedy = f"{task}.ipynb must run again: {REMEDY}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: {remedy}") from None
    try:
        record = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not complete JSON ({exc}): {remedy}") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_VERSION:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise ResultsError(f"{path} has schema {found!r}, this code reads schema {SCHEMA_VERSION}: {remedy}")
    stat = path.stat()
    seen = (str(path.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size, record.get("content_sha256"))
    if seen not in _VERIFIED:  # verifying re-serialises the record: once per file version and process
        if record.get("content_sha256") != _sealed(record)["content_sha256"]:
            raise ResultsError(f"{path} was altered after its notebook wrote it (its content digest does not "
                               f"match): {remedy}")
        _VERIFIED.add(seen)
    return record


_VERIFIED: set[tuple] = set()  # (path, inode, mtime, size, digest) of the results files found whole


def load_results(task: str, required: tuple[str, ...] = (), results_dir: str | Path = RESULTS_DIR,
                 sources_dir: str | Path = SOURCES_DIR, expected_key: str | None = None,
                 expected_parameters: dict | None = None) -> dict:
    """The record saved by `task`.ipynb; ResultsError naming the notebook to rerun if it is unusable.

    Unusable: missing, not complete JSON, another schema, altered after it was written, lacking a `required`
    key, its figures replaced, made from other code or data than `sources_dir` holds now, or (with
    `expected_key`, which `make report` passes) made with other parameters than the build asked for.
    """
    path = Path(results_dir) / f"{task}.json"
    record = read_results(path)
    remedy = f"{task}.ipynb must run again: {REMEDY}"
    missing = [key for key in ("task", "parameters", "fingerprint", "figures", *required) if key not in record]
    if missing:
        raise ResultsError(f"{path} lacks {', '.join(missing)}: {remedy}")
    now = fingerprint(task, record["parameters"], sources_dir)
    changed = [part for part in ("notebook", "modules", "data", "versions") if record["fingerprint"][part] != now[part]]
    if changed:
        raise ResultsError(f"{path} is outdated: its {', '.join(changed)} changed since it was written: {remedy}")
    if expected_key is not None and record["fingerprint"]["key"] != expected_key:
        made = record["parameters"]
        differ = ", ".join(f"{name} = {json.dumps(made.get(name))} where it asks for {json.dumps(value)}"
                           for name, value in (expected_parameters or {}).items() if made.get(name) != value)
        raise ResultsError(f"{path} holds a run made with other parameters than this build asks for "
                           f"({differ or 'the same values, of another key'}; a run from Jupyter?): {remedy}")
    figures_dir = Path(results_dir).parent / "figures" / task
    for name, digest in record["figures"].items():
        if not (figures_dir / name).exists() or sha256_bytes((figures_dir / name).read_bytes()) != digest:
            raise ResultsError(f"{figures_dir / name} is missing or not the figure of {path}: {remedy}")
    return record


def figure_ranges(record: dict) -> dict[str, list[dict]]:
    """{figure: its y-ranges} of a results record: what each shows and leaves out (a figure of several panels has
    one per panel, and the notebooks store a list; of one panel, a single range)."""
    return {name: r if isinstance(r, list) else [r] for name, r in record["figure_notes"].items()}


def figure_bytes(record: dict, name: str, figures_dir: str | Path) -> bytes:
    """The PNG of figure `name` of a results record, read once and checked against the digest the record holds (a
    run since may have replaced the file); ResultsError if it is missing or another."""
    path = Path(figures_dir) / record["task"] / f"{name}.png"
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    if record["figures"].get(path.name) != sha256_bytes(data):
        task = record["task"]
        raise ResultsError(f"{path} is missing or not the figure of {task}'s results: {task}.ipynb must run again: "
                           f"{REMEDY}")
    return data
