"""Jupyter and `make` tell one story: the notebook's parameters cell is what the build runs with, a run from Jupyter
can never enter a build's PDF, `make lab` starts anywhere, and outputs stay out of git."""

import html
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from conftest import SMOKE, STRIPPED, build_dir, edit_cell, make, pdf, pdf_text, staged, tempfile_dir, wait_for

from support.project import HEADINGS

pytestmark = pytest.mark.notebooks


def edit_parameters_cell(folder, task: str, old: str, new: str):
    """Edit a line of `task`.ipynb's parameters cell, as a student does in JupyterLab; a function that undoes it."""
    return edit_cell(folder / f"{task}.ipynb", lambda c: "parameters" in c["metadata"].get("tags", []), old, new)


WITHOUT_TASK3_EPOCHS = SMOKE.replace("task3.num_epochs=2 ", "")  # the notebook's own value counts


def test_a_value_edited_in_the_parameters_cell_is_what_make_report_builds(project):
    date = {"SOURCE_DATE_EPOCH": "1000000000"}
    restore = edit_parameters_cell(project, "task3", "num_epochs = 50", "num_epochs = 2")
    try:
        code, output = make(project, "report", params=WITHOUT_TASK3_EPOCHS, extra_env=date)
        assert code == 0, output
        default_pdf = pdf(project).read_bytes()
    finally:
        restore()
    restore = edit_parameters_cell(project, "task3", "num_epochs = 50", "num_epochs = 3")
    try:
        code, output = make(project, "report", params=WITHOUT_TASK3_EPOCHS, extra_env=date)
        assert code == 0 and "task3.ipynb ran" in output, output
        results = json.loads((build_dir(project) / "results" / "task3.json").read_text())
        assert results["parameters"]["num_epochs"] == 3
        assert "num_epochs = 3" in " ".join(pdf_text(pdf(project)).split())  # listed among the changed values
    finally:
        restore()
    restore = edit_parameters_cell(project, "task3", "num_epochs = 50", "num_epochs = 2")
    try:  # undone: the PDF of before, byte for byte
        code, output = make(project, "report", params=WITHOUT_TASK3_EPOCHS, extra_env=date)
        assert code == 0 and pdf(project).read_bytes() == default_pdf, output
    finally:
        restore()
    assert make(project, "report")[0] == 0


@pytest.mark.parametrize(("line", "message"), [
    ("num_epochs = 0", "error: task3.num_epochs must be an integer in [1, 100000], received 0 (set in task3.ipynb's "
                       "parameters cell). Nothing was run."),
    ("num_epochs = 5 * 10", "task3.ipynb's parameters cell, line"),
    ("learning_rat = 0.01", "task3.ipynb's parameters cell sets learning_rat, which experiments.Task3Config does "
                            "not know"),
])
def test_a_bad_value_in_the_cell_is_one_line_before_any_work(project, line, message):
    restore = edit_parameters_cell(project, "task3", "num_epochs = 50", line)
    try:
        code, output = make(project, "report", params=WITHOUT_TASK3_EPOCHS)
    finally:
        restore()
    assert code != 0 and message in output and len(output.strip().splitlines()) == 1, output


def test_results_a_jupyter_run_writes_during_a_build_never_reach_its_pdf(project):
    """While `make report SEED=1` trains Task 3, a run of task2.ipynb from Jupyter with its notebook's own seed (0)
    finishes and replaces build/results/task2.json and its figures: the build must not make a PDF of mixed seeds."""
    import papermill

    seed1 = SMOKE + " task2.shuffle_seed=1 task3.shuffle_seed=1 task4.shuffle_seed=1"
    assert make(project, "report", params=seed1)[0] == 0
    results = build_dir(project) / "results" / "task2.json"
    seed1_key = json.loads(results.read_text())["fingerprint"]["key"]
    jupyter = tempfile_dir(project) / "jupyter run"
    shutil.rmtree(jupyter, ignore_errors=True)
    jupyter.mkdir()
    params = {**json.loads(results.read_text())["parameters"], "shuffle_seed": 0, "progress": False}
    env = {"TDT4265_OUT_DIR": str(jupyter),  # made aside first, then landed in one go, as a save does
           "JPY_SESSION_NAME": str(project / "task2.ipynb")}  # what Jupyter tells a notebook's kernel
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(project / "task2.ipynb", jupyter / "task2.ipynb", parameters=params,
                                   cwd=str(project), kernel_name="python3", progress_bar=False)
    finally:
        for k, v in old_env.items():
            os.environ.pop(k) if v is None else os.environ.update({k: v})
    proc = make(project, "report", params=seed1.replace("task3.num_epochs=2", "task3.num_epochs=3"), wait=False)
    wait_for(staged(project, "task3."))  # Task 2 is current: the build trusts it, and trains Task 3
    for figure in (jupyter / "figures" / "task2").iterdir():
        shutil.copy(figure, build_dir(project) / "figures" / "task2" / figure.name)
    shutil.copy(jupyter / "results" / "task2.json", results)  # the Jupyter run's seed 0 lands
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode in (0, 1) and "Traceback" not in output, output
    if proc.returncode == 0:  # the build saw it, ran Task 2 again with seed 1, and then made the PDF
        assert "task2.ipynb ran" in output, output
        said = [line for line in output.splitlines() if "so this build runs again" in line]
        assert len(said) == 1 and "task2.json holds a run made with other parameters" in said[0], output
        assert "(shuffle_seed = 0 where it asks for 1; a run from Jupyter?)" in said[0], output
        assert said[0].endswith("so this build runs again the task notebooks whose results are not its own, then "
                                "the report"), output
        assert json.loads(results.read_text())["fingerprint"]["key"] == seed1_key
        assert "seeded with 1" in " ".join(pdf_text(pdf(project)).split())
    else:
        assert "No PDF was made of them" in output, output
    assert make(project, "report")[0] == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_args(port: int) -> str:
    """LAB_ARGS for a JupyterLab without a browser, on `port`, with a known token."""
    return f"--no-browser --port {port} --IdentityProvider.token=t0ken --ServerApp.open_browser=False"


def wait_until_serving(port: int, proc) -> None:
    """Wait until the JupyterLab that `proc` started answers on `port`; fail, with its output, if it ended instead."""
    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=t0ken", timeout=2) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None  # it ended: stop waiting (the assert below says why)
    wait_for(answers, timeout=120)
    assert proc.poll() is None, proc.communicate()[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="JupyterLab as root (CI's case)")
def test_make_lab_starts_as_root_with_lab_args_and_stops_at_ctrl_c(project):
    """As root, LAB_ARGS passed on, kernels over Unix sockets; Ctrl-C in the terminal is JupyterLab's to answer
    ("Shut down this Jupyter server (y/[n])?"): it shuts its kernels down itself, make.py waits for it."""
    port, runtime = free_port(), Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # a socket's path is short
    args = lab_args(port)
    terminal, student = pty.openpty()  # JupyterLab asks at Ctrl-C only when its input is a terminal
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED} | {"JUPYTER_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen([sys.executable, str(project / "make.py"), f"PY={sys.executable}", "lab",
                             f"LAB_ARGS={args}"], cwd=project, env=env, stdin=student, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until_serving(port, proc)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels?token=t0ken", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:  # a kernel starts, as a notebook opens one
            assert json.load(response)["name"] == "python3"
        time.sleep(8)  # long enough for its start-up messages (over TCP: the warning)
        assert list(runtime.glob("kernel-*.json"))  # the kernel's connection file, while it runs
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal: the whole process group
        time.sleep(2)  # JupyterLab asks; make.py must not have killed it meanwhile
        assert proc.poll() is None
        os.write(terminal, b"y\n")
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(terminal)
        os.close(student)
    assert "running as root: JupyterLab starts with --allow-root" in output, output
    assert "Kernel started" in output and "Kernel is running over TCP" not in output, output
    assert "Running as root is not recommended" not in output
    assert "Shut down this Jupyter server" in output and "Shutdown confirmed" in output, output
    assert "interrupted: the steps" not in output, output  # not a build's message
    assert "Parent appears to have exited" not in output and not list(runtime.glob("kernel-*")), output
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_notebook_saved_with_outputs_reaches_git_without_them(project, tmp_path):
    """make setup defines the filter (the first build does too, when it makes .venv); a notebook saved by JupyterLab
    with outputs is staged without them, and make lint checks what is staged."""
    clone = tmp_path / "a clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns("build", "*.pdf", ".venv"))
    git = ["git", "-c", "user.email=s@example.com", "-c", "user.name=student"]
    subprocess.run([*git, "init", "-q"], cwd=clone, check=True)
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=clone, check=True)
    assert make(clone, "params")[0] == 0
    config = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=clone, capture_output=True)
    assert config.stdout == b"", "a target that is no setup wrote .git/config"
    assert make(clone, "setup")[0] == 0
    path = clone / "task3.ipynb"
    book = json.loads(path.read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["trained\n"]}]
            cell["execution_count"] = 4
    book["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    path.write_text(json.dumps(book, indent=1))
    subprocess.run([*git, "add", "task3.ipynb"], cwd=clone, check=True)
    staged_text = subprocess.run(["git", "show", ":task3.ipynb"], cwd=clone, capture_output=True, text=True).stdout
    assert '"trained' not in staged_text and '"execution_count": 4' not in staged_text
    assert '"trained' in path.read_text()  # the student keeps their outputs
    diff = subprocess.run(["git", "diff", "--cached", "--stat"], cwd=clone, capture_output=True, text=True).stdout
    assert diff.strip() == "", diff  # nothing a student wrote changed
    code, output = make(clone, "lint")
    assert code == 0, output


def test_make_lab_passes_options_through_make_py_too(project):
    """`python make.py lab LAB_ARGS=...` reaches JupyterLab: `--version` prints its version and ends."""
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    proc = subprocess.run([sys.executable, str(project / "make.py"), "lab", f"PY={sys.executable}",
                           "LAB_ARGS=--version"], cwd=project, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip()[:1].isdigit(), proc.stdout + proc.stderr


NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+\.\d+%?")  # 1,038 0.0657 97.89%: the report's numbers, not its math


@pytest.mark.skipif(shutil.which("xelatex") is None, reason="Jupyter's PDF export runs xelatex (make report "
                                                             "installs TeX Live as root)")
def test_jupyters_own_pdf_and_html_exports_under_make_lab_give_the_whole_report(project, tmp_path):
    """File > Save and Export Notebook As > PDF (and HTML) asks the server for /nbconvert/<format>/<notebook>: done
    here headless under `make lab`, for the report as Run All left it (its values stored) and for the notebook as
    committed (never run: the export runs it). Every heading and figure, no code, the numbers of make report's PDF."""
    executed = build_dir(project) / "notebooks" / "report.ipynb"  # as Run All leaves it: outputs and values
    ran = project / "build" / "exports" / "ran.ipynb"
    ran.parent.mkdir(parents=True, exist_ok=True)
    ran.write_bytes(executed.read_bytes())
    port = free_port()
    # a report run from Jupyter reads build/results/; this project's build is of the synthetic data set
    env = {"TDT4265_RESULTS_DIR": str(build_dir(project) / "results"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = make(project, "lab", f"LAB_ARGS={lab_args(port)}", wait=False, extra_env=env)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> bytes:
        try:
            with urllib.request.urlopen(f"{base}{path}{'&' if '?' in path else '?'}token=t0ken", timeout=300) as r:
                return r.read()
        except urllib.error.HTTPError as exc:  # the server's page says what nbconvert said
            page = exc.read().decode(errors="replace")
            said = re.findall(r"nbconvert failed:[^<]*", page) or [page[-2000:]]
            raise AssertionError(f"{path}: {exc}: {html.unescape(said[0])}") from None

    try:
        wait_until_serving(port, proc)
        assert "webpdf" not in json.loads(get("/api/nbconvert"))  # not offered: it would need a browser download
        expected = Counter(NUMBER.findall(pdf_text(pdf(project))))
        for name in ("build/exports/ran.ipynb", "report.ipynb"):
            exported = tmp_path / (name.replace("/", "-") + ".pdf")
            exported.write_bytes(get(f"/nbconvert/pdf/{name}?download=true"))
            text = pdf_text(exported)
            for heading in HEADINGS:
                assert heading in text, (name, heading)
            assert "load_answers" not in text and ".figure(" not in text and "{eval}" not in text, name
            images = subprocess.run(["pdfimages", "-list", str(exported)], capture_output=True, text=True).stdout
            assert len(images.splitlines()) - 2 == 12, images  # every figure
            assert Counter(NUMBER.findall(text)) == expected, name
        page = get("/nbconvert/html/build/exports/ran.ipynb?download=true&sanitize_html=true").decode()
        assert "&lt;p&gt;" not in page and "<h2" in page and "load_answers" not in page  # sanitized, and readable
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # JupyterLab shuts down its kernels
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        shutil.rmtree(ran.parent, ignore_errors=True)
