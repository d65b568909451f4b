"""tools/run_notebook.py's kernel: it starts even when other kernels start at the same moment."""

import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "tools" / "run_notebook.py")
run_notebook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebook)


class FakeClient:
    """nbclient's NotebookClient as start_kernel uses it; its first `deaths` kernels die as they start."""

    def __init__(self, deaths: int, error: str = "Kernel died before replying to kernel_info"):
        self.deaths, self.error = deaths, error
        self.km, self.started, self.stopped, self.config = None, [], [], "ipc"

    def create_kernel_manager(self):
        return object()

    async def async_start_new_kernel(self):
        self.started.append(self.km)

    async def async_start_new_kernel_client(self):
        if len(self.started) <= self.deaths:
            self.stopped.append(self.km)  # as nbclient does when the client fails
            self.km = None
            raise RuntimeError(self.error)

    async def _async_cleanup_kernel(self):
        self.stopped.append(self.km)
        self.km = None


async def start_then_close(client: FakeClient) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await run_notebook.start_kernel(client, stack, last_resort="tcp")


def test_a_kernel_that_dies_as_it_starts_is_started_again_and_each_one_is_stopped_once(capsys):
    client = FakeClient(deaths=run_notebook.KERNEL_STARTS - 1)
    asyncio.run(start_then_close(client))
    assert len(client.started) == run_notebook.KERNEL_STARTS
    assert client.config == "tcp"  # the last start takes the last resort
    assert client.stopped == client.started  # the dead ones by nbclient, the one that ran when the stack closed
    assert f"attempt 1 of {run_notebook.KERNEL_STARTS}" in capsys.readouterr().err


def test_a_kernel_that_always_dies_gives_up_after_kernel_starts_tries():
    client = FakeClient(deaths=run_notebook.KERNEL_STARTS)
    with pytest.raises(run_notebook.KernelDidNotStart):
        asyncio.run(start_then_close(client))
    assert len(client.started) == run_notebook.KERNEL_STARTS


def test_other_start_errors_are_not_retried():
    client = FakeClient(deaths=1, error="Kernel didn't respond in 60 seconds")
    with pytest.raises(RuntimeError, match="didn't respond"):
        asyncio.run(start_then_close(client))
    assert len(client.started) == 1 and client.config == "ipc"


def test_a_folder_whose_socket_paths_would_be_too_long_falls_back_to_tcp(tmp_path):
    folder = tmp_path / ("x" * 120)
    assert run_notebook.kernel_config(folder)["KernelManager"].get("transport", "tcp") == "tcp"
    assert run_notebook.kernel_config(tmp_path, tcp=True)["KernelManager"].get("transport", "tcp") == "tcp"


def kernel_transport(tmp_path, temporary_folder):
    """(transport, address) of the kernel of a runner whose temporary folders go in `temporary_folder`."""
    code = "from ipykernel.kernelapp import IPKernelApp\napp = IPKernelApp.instance()\nprint(app.transport, app.ip)"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), tmp_path / "in.ipynb")
    temporary_folder.mkdir(parents=True, exist_ok=True)
    (tmp_path / "parameters.json").write_text("{}")
    subprocess.run([sys.executable, ROOT / "tools" / "run_notebook.py", tmp_path / "in.ipynb",
                    tmp_path / "out.ipynb", tmp_path / "parameters.json"], text=True, check=True, timeout=120,
                   stdin=subprocess.DEVNULL,
                   env={**os.environ, "TMPDIR": str(temporary_folder), "TEMP": str(temporary_folder)})
    assert not list(temporary_folder.iterdir())  # its folder is gone
    return tuple(nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split())


@pytest.mark.notebooks
@pytest.mark.skipif(os.name == "nt", reason="Windows' kernels use TCP")
def test_the_kernel_talks_over_unix_sockets_in_a_folder_removed_at_the_end(tmp_path):
    """No TCP ports: kernels started at once cannot take each other's (jupyter/jupyter_client#154)."""
    # pytest's tmp_path can be too long for a socket's path (macOS: /private/var/folders/...): a short folder
    with tempfile.TemporaryDirectory(prefix="rt-", dir="/tmp") as short:
        assert kernel_transport(tmp_path, Path(short))[0] == "ipc"


@pytest.mark.notebooks
def test_where_unix_sockets_cannot_be_the_kernel_talks_over_tcp(tmp_path):
    """Windows' route, and a temporary folder whose path is too long for a Unix socket."""
    assert kernel_transport(tmp_path, tmp_path / ("x" * 110)) == ("tcp", "127.0.0.1")


@pytest.mark.notebooks
def test_the_runner_runs_the_notebook_the_build_sends_and_stops_when_the_build_is_gone(tmp_path):
    """The build reads a notebook once and sends those bytes: an edit saved to the file meanwhile does not run.
    It keeps standard input open while it waits; when that closes (the build was killed), the runner stops."""
    source = tmp_path / "in.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('saved later')")]), source)
    sent = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(answer)")])
    runner = [sys.executable, ROOT / "tools" / "run_notebook.py", source, tmp_path / "out.ipynb", "-"]
    proc = subprocess.Popen(runner, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdin.write(json.dumps({"parameters": {"answer": 42}, "notebook": sent}) + "\n")
    proc.stdin.flush()
    assert proc.wait(timeout=120) == 0, proc.stdout.read()
    proc.stdin.close()
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    assert cells[-1].outputs[0]["text"] == "42\n"  # the sent notebook, with its parameters

    sent = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(60)")])
    proc = subprocess.Popen(runner, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdin.write(json.dumps({"parameters": {}, "notebook": sent}) + "\n")
    proc.stdin.flush()
    time.sleep(3)  # the cell runs
    started = time.monotonic()
    proc.stdin.close()  # what a build killed with SIGKILL leaves: its end of the pipe closed
    assert proc.wait(timeout=30) == 130 and time.monotonic() - started < 15, proc.stdout.read()
