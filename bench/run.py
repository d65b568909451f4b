"""`make bench`: the project's trainer against the reference in bench/reference.py, side by side, and the floor.

Prints a table, then one `name=value` line per figure for scripts. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from reference import train_reference  # noqa: E402

from experiments import Task2Config, Task3Config  # noqa: E402
from experiments import fit as train  # noqa: E402  (the fast engine, as the experiments train)
from support.inline import without_marks  # noqa: E402
from support.project import handin_files  # noqa: E402
from utils import BinaryModel, SoftmaxModel, load_binary_dataset, load_full_mnist, pre_process_images  # noqa: E402

LINES: list[str] = []


def figure(name: str, value) -> None:
    LINES.append(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def threads() -> str:
    try:
        from threadpoolctl import threadpool_info

        return ", ".join(f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}"
                         for i in threadpool_info())
    except ImportError:
        return "threadpoolctl not installed"


def compare(name: str, make_model, raw, cfg, shuffle: bool, repeats: int) -> dict:
    """Alternate project (A) and reference (B) runs, `repeats` each; print medians and accuracies."""
    X_raw, Y_train, X_val_raw, Y_val = raw
    X64, Xv64 = pre_process_images(X_raw, np.float64), pre_process_images(X_val_raw, np.float64)
    X, Xv = pre_process_images(X_raw, cfg.dtype), pre_process_images(X_val_raw, cfg.dtype)
    settings = dict(learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, num_epochs=cfg.num_epochs,
                    shuffle=shuffle)
    project_times, reference_times = [], []
    for _ in range(repeats):
        seconds, result = timed(lambda: train(make_model(), X, Y_train, Xv, Y_val, **settings,
                                              rng=np.random.default_rng(cfg.shuffle_seed)))
        project_times.append(seconds)
        seconds, (w, _, val_history) = timed(lambda: train_reference(
            X64, Y_train, Xv64, Y_val, **settings, rng=np.random.default_rng(cfg.shuffle_seed)))
        reference_times.append(seconds)
    project, reference = statistics.median(project_times), statistics.median(reference_times)
    steps = result.num_steps
    ref_val_acc = list(val_history["accuracy"].values())[-1]
    out = {"project": project, "reference": reference, "ratio": project / reference, "steps": steps,
           "checks": len(result.history["check_steps"]), "val_acc": result.history["val_accuracy"][-1],
           "ref_val_acc": ref_val_acc}
    print(f"\n{name}: {steps} steps, {out['checks']} checks, dtype {cfg.dtype} (reference float64), "
          f"{repeats} runs each, alternating")
    print(f"  {'':10} {'median s':>9} {'runs s':>24} {'steps/s':>9} {'val acc':>8}")
    for label, med, runs, acc in (("project", project, project_times, out["val_acc"]),
                                  ("reference", reference, reference_times, ref_val_acc)):
        print(f"  {label:10} {med:9.2f} {' '.join(f'{t:.2f}' for t in runs):>24} {steps / med:9.0f} {acc:8.4f}")
    print(f"  project / reference = {out['ratio']:.3f} ({1 / out['ratio']:.1f}x faster); validation accuracy "
          f"differs by {100 * (out['val_acc'] - ref_val_acc):+.2f} percentage points")
    figure(f"{name}_ratio", out["ratio"])
    figure(f"{name}_speedup", 1 / out["ratio"])
    figure(f"{name}_project_s", project)
    figure(f"{name}_reference_s", reference)
    figure(f"{name}_steps_per_s", steps / project)
    figure(f"{name}_val_acc_diff_pp", 100 * (out["val_acc"] - ref_val_acc))
    return out


def machine_rates(dtype, rows: int) -> tuple[float, float]:
    """(FLOP/s of a large GEMM, bytes/s of reading a (rows, 785) matrix with GEMV), best of a few tries.

    GEMV reads its matrix once at the speed memory (or cache, for a small one) delivers: the best case for
    the checks, which read the same bytes.
    """
    rng = np.random.default_rng(0)
    a = rng.random((2048, 2048)).astype(dtype)
    gemm = min(timed(lambda: a @ a)[0] for _ in range(5))
    X = rng.random((rows, 785)).astype(dtype)
    v = rng.random(785).astype(dtype)
    read = min(timed(lambda: X @ v)[0] for _ in range(10))
    return 2 * 2048**3 / gemm, X.nbytes / read


def floor(name: str, out: dict, num_train: int, num_val: int, outputs: int, cfg) -> None:
    """Lower bounds of the run's time: its FLOPs at large-GEMM speed, and the checks' bytes at GEMV read speed."""
    dims = 785
    itemsize = np.dtype(cfg.dtype).itemsize
    flops = (out["steps"] * 4 * cfg.batch_size * dims * outputs
             + out["checks"] * 2 * (num_train + num_val) * dims * outputs)
    bytes_read = out["checks"] * (num_train + num_val) * dims * itemsize
    gemm_rate, bandwidth = machine_rates(cfg.dtype, num_train + num_val)
    compute_s, memory_s = flops / gemm_rate, bytes_read / bandwidth
    bound = max(compute_s, memory_s)
    print(f"  floor: {flops / 1e9:.1f} GFLOP at {gemm_rate / 1e9:.0f} GFLOP/s = {compute_s:.2f} s; "
          f"{bytes_read / 1e9:.1f} GB read by the checks at {bandwidth / 1e9:.1f} GB/s = {memory_s:.2f} s")
    print(f"  project {out['project']:.2f} s = {out['project'] / bound:.1f}x the floor "
          f"(reference {out['reference'] / bound:.1f}x)")
    figure(f"{name}_floor_s", bound)
    figure(f"{name}_over_floor", out["project"] / bound)


def copy_project(dest: Path) -> None:
    """The project's sources (those of the hand-in, `make submission`) into `dest`."""
    for name in handin_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def build(project: Path) -> tuple[float, str]:
    """(seconds, output) of `make.py report` in `project` with this interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "TDT4265_MAKE_INNER"}
    env["MNIST_DIR"] = env.get("MNIST_DIR", str(ROOT / "data" / "mnist"))  # the cache the real build filled
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(project / "make.py"), "report", f"PY={sys.executable}"], cwd=project,
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"make.py report failed in {project}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - started, proc.stderr


def edit_times() -> None:
    """What a student waits for: a full retrain and PDF, a touch without change, a sentence of the 3d answer
    reworded; each against the full retrain, in a copy of the project (the real build/ and sources are left alone)."""
    print("\nedit to PDF (a copy of the project; .venv and the MNIST cache reused):")
    with tempfile.TemporaryDirectory(prefix="bench edit ") as tmp:
        project = Path(tmp)
        copy_project(project)
        build(project)  # a first build: the copy's build folder filled
        trainer = project / "trainer.py"
        trainer.write_text(trainer.read_text() + "\n# an edit that changes the content\n")
        full, output = build(project)
        for match in re.finditer(r"^==> (\S+).*?([\d.]+) s$", output, flags=re.MULTILINE):
            name, seconds = match[1].split(".")[0].lower(), float(match[2])  # task2.ipynb -> task2, PDF -> pdf
            print(f"  stage {name:8} {seconds:7.1f} s")
            figure(f"stage_{name}_s", seconds)
        for path in project.glob("*.*"):
            path.touch()
        touch, _ = build(project)
        report = project / "report.ipynb"
        book = json.loads(report.read_text())  # one sentence of the 3d answer reworded, in its Markdown cell
        cell = next(c for c in book["cells"]
                    if without_marks("".join(c["source"])).startswith("We call it overfitting"))
        cell["source"] = "".join(cell["source"]).replace("We call it overfitting", "In other words, it overfits")
        report.write_text(json.dumps(book, indent=1))
        prose, _ = build(project)
    for name, seconds in (("full_retrain", full), ("touch", touch), ("prose_edit", prose)):
        print(f"  {name:14} {seconds:6.1f} s   {seconds / full:6.1%} of the full retrain")
        figure(f"edit_{name}_s", seconds)
        figure(f"edit_{name}_ratio", seconds / full)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each implementation (default 3)")
    parser.add_argument("--no-stages", action="store_true", help="skip timing the build and the edits")
    parser.add_argument("--only-stages", action="store_true", help="only time the build and the edits")
    args = parser.parse_args()

    print(f"numpy {np.__version__}; BLAS: {threads()}; {os.cpu_count()} cores; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if not args.only_stages:
        cfg3 = Task3Config.from_notebook()
        X, Y, X_val, Y_val = load_full_mnist(train_size=cfg3.train_size, dataset=cfg3.dataset)
        raw3 = X, Y[:, 0], X_val, Y_val[:, 0]  # labels (N,), as the experiments train
        out3 = compare("softmax", lambda: SoftmaxModel(dtype=cfg3.dtype), raw3, cfg3, shuffle=True,
                       repeats=args.repeats)
        floor("softmax", out3, len(raw3[0]), len(raw3[2]), 10, cfg3)
        cfg2 = Task2Config.from_notebook()
        raw2 = load_binary_dataset(cfg2.class1, cfg2.class2, train_size=cfg2.train_size, dataset=cfg2.dataset)
        out2 = compare("binary", lambda: BinaryModel(dtype=cfg2.dtype), raw2, cfg2, shuffle=False,
                       repeats=args.repeats)
        floor("binary", out2, len(raw2[0]), len(raw2[2]), 1, cfg2)
    if not args.no_stages:
        edit_times()
    print()
    print("\n".join(LINES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
