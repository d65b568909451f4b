"""What the build tests share (`make test-build`): a copy of the project in a folder whose name has a space, built once on synthetic
data (Typst), and the ways to run make.py in it, edit it and watch its processes."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from support.project import handin_files

ROOT = Path(__file__).resolve().parents[2]
SMOKE = " ".join([
    "task2.train_size=2000 task2.num_epochs=2 task2.num_epochs_early_stopping=4 task2.gradient_check_examples=5",
    "task3.train_size=600 task3.num_epochs=2 task3.gradient_check_examples=5",
    "task4.train_size=600 task4.num_epochs=2 task4.gradient_check_examples=5 task4.lambdas=[2, 0.02]",
])
STRIPPED = ("TDT4265_MAKE_INNER", "PARAMS", "SEED", "DATASET", "PDF_ENGINE", "AUTO_INSTALL", "PY", "BUILD_DIR",
            "PDF", "PYTEST_ARGS", "SOURCE_DATE_EPOCH", "TDT4265_OUT_DIR", "TDT4265_SHARED_DIR", "TDT4265_WAIT_FOR")
# Ctrl-C as a terminal sends it: a signal to the build's process group (Windows has console events instead)
POSIX_SIGNALS = pytest.mark.skipif(not hasattr(os, "killpg"), reason="signals a process group (POSIX)")
# tests that mount a file system (a full disk, a read-only checkout): root, and mount and umount on PATH
AS_ROOT = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None
                             or shutil.which("umount") is None, reason="mounts a file system (root, mount, umount)")


def pytest_collection_modifyitems(items):
    """Every test here runs whole builds: marked build, which `make test` leaves out and `make test-build` runs."""
    for item in items:
        if Path(item.fspath).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.build)


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """A copy of the project in a folder whose name has a space, built once (synthetic data, Typst)."""
    folder = tmp_path_factory.mktemp("build tests") / "a project"
    for name in handin_files():  # what the hand-in holds: the build must work from it
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)
    code, output = make(folder, "report")
    assert code == 0, output
    return folder


def make(folder, *args, params=SMOKE, wait=True, extra_env=None):
    """Run `python make.py ARGS` in `folder` with this interpreter; (exit code, stdout + stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env.update(extra_env or {})
    command = [sys.executable, str(folder / "make.py"), f"PY={sys.executable}", "DATASET=synthetic",
               f"PARAMS={params}", "PDF_ENGINE=typst", *args]  # args last: they win
    proc = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if not wait:
        return proc
    output, _ = proc.communicate(timeout=600)
    return proc.returncode, output


def pdf(folder):
    return folder / "report-synthetic.pdf"


def build_dir(folder):
    return folder / "build" / "synthetic"


def pdf_text(path):
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def edit_report(folder, text, code=None):
    """Append a Markdown cell to report.ipynb (a prose edit), and a code cell if given; return a function that
    takes it back."""
    path = folder / "report.ipynb"
    before = path.read_bytes()
    book = nbformat.read(path, as_version=4)
    book.cells.append(new_markdown_cell(text))
    if code is not None:
        book.cells.append(new_code_cell(code))
    nbformat.write(book, path)
    return lambda: path.write_bytes(before)


def edit_cell(path, pick, old, new):
    """Replace `old` by `new` in the first cell of the notebook at `path` for which `pick(cell)` holds, as a student
    edits it in JupyterLab; return a function that takes it back."""
    before = path.read_bytes()
    book = json.loads(before)
    cell = next(c for c in book["cells"] if pick(c))
    source = "".join(cell["source"])
    assert old in source
    cell["source"] = source.replace(old, new)
    path.write_text(json.dumps(book, indent=1))
    return lambda: path.write_bytes(before)


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def processes_in(folder) -> list[str]:
    """The command lines of the processes (runners, kernels, xelatex) working in `folder`."""
    import psutil  # ipykernel's dependency

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and Path(proc.cwd()).is_relative_to(folder):
                found.append(" ".join(proc.cmdline()))
        except (psutil.Error, OSError, ValueError):
            continue
    return found


def report_kernel_up(folder) -> bool:
    """Whether the report's runner in `folder` has started its kernel (it then waits for its parameters)."""
    import psutil

    for proc in psutil.process_iter():
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                if str(Path(folder) / "report.ipynb") in " ".join(proc.parent().cmdline()):
                    return True
        except (psutil.Error, OSError, AttributeError):  # gone, not ours, or no parent
            continue
    return False


def nothing_left_running(folder) -> None:
    """Within a few seconds no process of the build is left (no kernel, no runner waiting for its parameters)."""
    wait_for(lambda: not processes_in(folder), timeout=15)


def staged(folder, prefix):
    staging = build_dir(folder) / ".staging"
    return lambda: staging.exists() and any(p.name.startswith(prefix) for p in staging.iterdir())


def tempfile_dir(folder):
    path = folder.parent / "elsewhere"
    path.mkdir(exist_ok=True)
    return path


