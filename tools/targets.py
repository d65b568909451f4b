"""The build's steps, run by make.py inside .venv: parameters, data, task notebooks, report, PDF, HTML.

Each step compares the fingerprint of what it would make with the one recorded in its output; it runs when they
differ. It works in a staging folder (build/.staging/) and its outputs appear by rename once complete and
checked. One build at a time per build folder (filelock).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from make import BuildError, file_sha256, say

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("task2", "task3", "task4")
HEADINGS = tuple(f"Task {n}{s}" for n, subs in ((1, "ab"), (2, "abcde"), (3, "abcd"), (4, "abcde")) for s in subs)
MIN_PAGES = 5
LATEX_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic"
LATEX_STYLES = ("eurosym.sty", "ulem.sty", "adjustbox.sty", "bookmark.sty")
NONE_COUNTER = "\\makeatletter\\@ifundefined{c@none}{\\newcounter{none}}{}\\makeatother\n"
FIGURE_THEN_CAPTION = re.compile(r"(\\begin\{center\}\s*\\adjustimage\{[^\n]*\n\s*\\end\{center\}\s*"
                                 r"\{ \\hspace\*\{\\fill\} \\\\\}\s*\n)(\s*\\textbf\{Figure \d+\.\}.*?)(\n\s*\n)", re.S)
STOP = threading.Event()  # set at an interrupt: every running command is stopped


@dataclass
class Build:
    """What one invocation builds: the data set, its build folder and outputs, and each notebook's parameters."""

    dataset: str
    dir: Path
    pdf: Path
    params: dict[str, dict]
    variables: dict[str, str]

    @property
    def staging(self) -> Path:
        return self.dir / ".staging"

    @property
    def html(self) -> Path:
        return self.pdf.with_suffix(".html")


def context(variables: dict[str, str]) -> Build:
    """The build asked for; BuildError (nothing run) if a parameter is not valid."""
    from tools.params import ParameterError, resolve

    try:
        params = resolve(variables["PARAMS"], variables["SEED"], variables["DATASET"])
    except ParameterError as exc:
        raise BuildError(f"{exc}. Nothing was run.") from None
    for name, allowed in (("PDF_ENGINE", ("auto", "latex", "typst")), ("AUTO_INSTALL", ("yes", "no"))):
        if variables[name] not in allowed:
            raise BuildError(f"{name} must be one of {', '.join(allowed)}, received {variables[name]!r}. "
                             "Nothing was run.")
    pdf_epoch()  # SOURCE_DATE_EPOCH, if set, checked now
    dataset = params["task2"]["dataset"]
    default_dir = ROOT / "build" if dataset == "mnist" else ROOT / "build" / dataset
    default_pdf = ROOT / ("report.pdf" if dataset == "mnist" else f"report-{dataset}.pdf")
    return Build(dataset, Path(variables.get("BUILD_DIR") or default_dir).resolve(),
                 Path(variables.get("PDF") or default_pdf).resolve(), params, variables)


LAST_EPOCH = 253402300799  # 9999-12-31 23:59:59 UTC: four-digit years


def pdf_epoch() -> int:
    """The PDF's date in seconds since 1970: SOURCE_DATE_EPOCH if set, else today's date (00:00, as UTC), so that
    the same report built twice on a day gives the same bytes. BuildError if SOURCE_DATE_EPOCH is not a number."""
    import calendar
    import datetime

    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return calendar.timegm(datetime.date.today().timetuple())
    if not value.isdigit() or int(value) > LAST_EPOCH:
        raise BuildError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970 up to {LAST_EPOCH} (the end of 9999), "
                         f"e.g. $(git log -1 --format=%ct); received {value!r}. Nothing was run.")
    return int(value)


# ---------------------------------------------------------------- running things


@contextlib.contextmanager
def build_lock(build: Build):
    """Hold the build folder's lock; a second build says whose it is and waits."""
    from filelock import FileLock, Timeout

    build.dir.mkdir(parents=True, exist_ok=True)
    lock, owner = FileLock(build.dir / ".lock"), build.dir / ".lock.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = owner.read_text().strip() if owner.exists() else "unknown"
        say(f"another build is running in {build.dir} (pid {pid}); waiting for it to finish")
        waited = time.monotonic()
        lock.acquire()
        say(f"the other build finished after {time.monotonic() - waited:.0f} s; this one starts now")
    try:
        owner.write_text(str(os.getpid()))
        shutil.rmtree(build.staging, ignore_errors=True)  # what an interrupted build left half-done
        yield
    finally:
        shutil.rmtree(build.staging, ignore_errors=True)
        owner.unlink(missing_ok=True)
        lock.release()


def run_command(command: list[str], cwd: Path = ROOT, env: dict | None = None) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `command`; stopped (SIGINT, then harder) at an interrupt."""
    return finish_command(start_command(command, cwd, env))


def start_command(command: list[str], cwd: Path = ROOT, env: dict | None = None, stdin=subprocess.DEVNULL
                  ) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")


def finish_command(proc: subprocess.Popen, input: str | None = None) -> tuple[int, str]:
    """(exit code, stdout + stderr) of a started command, once it ends, `input` sent to its standard input first;
    stopped at an interrupt."""
    chunks = []
    try:
        while True:
            try:
                out, _ = proc.communicate(input, timeout=0.2)
                chunks.append(out or "")
                return proc.returncode, "".join(chunks)
            except subprocess.TimeoutExpired:
                input = None  # the first call took it: the retries send the rest
                if STOP.is_set():
                    raise KeyboardInterrupt from None
    except KeyboardInterrupt:
        STOP.set()
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> None:
    """Ask `proc` to stop as Ctrl-C would, then insist."""
    for ask, wait in ((lambda: proc.send_signal(signal.SIGINT) if os.name != "nt" else proc.terminate(), 10),
                      (proc.terminate, 5), (proc.kill, 5)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            ask()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def staging_dir(build: Build, name: str) -> Path:
    build.staging.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}.", dir=build.staging))


def publish(src: Path, dest: Path) -> None:
    """Move a finished file into place by rename (the old one stays until then)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)


class NotebookRun:
    """tools/run_notebook.py started now: its kernel starts at once, and it runs the notebook into `out` when
    `run` sends it the parameters (the report's run is started while the task notebooks still run). The
    parameters go through its standard input: if this process ends first, the runner sees it closed and ends too."""

    def __init__(self, source: Path, out: Path):
        self.source, self.out = source, out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = start_command(python(str(ROOT / "tools" / "run_notebook.py"), str(source), str(out), "-"),
                                  stdin=subprocess.PIPE)

    def run(self, parameters: dict) -> str:
        """The notebook run with `parameters`; its output. BuildError showing the failing cell."""
        code, output = finish_command(self.proc, json.dumps(parameters))
        output = "\n".join(line for line in output.splitlines() if "Kernel is running over TCP" not in line)
        if code == 130:
            raise KeyboardInterrupt
        if code == 74:  # the runner could not write: one line naming the file
            raise BuildError(f"{output.strip().splitlines()[-1]}; the last good outputs are kept")
        if code:
            raise BuildError(f"{self.source.name} failed:\n{output.strip()}")
        return output

    def cancel(self) -> None:
        """Stop the runner (and its kernel) without running the notebook: its standard input closes; then insist."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        _stop(self.proc)


def run_notebook(source: Path, out: Path, parameters: dict) -> str:
    """Execute `source` into `out` with `parameters`; its output. BuildError showing the failing cell."""
    return NotebookRun(source, out).run(parameters)


def timed(label: str, started: float) -> None:
    say(f"==> {label:24} {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------- data


def can_apt(build: Build) -> bool:
    return (build.variables["AUTO_INSTALL"] == "yes" and os.name == "posix" and os.geteuid() == 0
            and shutil.which("apt-get") is not None)


def apt_install(packages: str) -> None:
    say(f"installing with apt-get: {packages}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages.split()]):
        code, output = run_command(command, env=env)
        if code:
            raise BuildError(f"{' '.join(command)} failed:\n{output[-2000:]}")


def step_data(build: Build) -> None:
    """The data set in its cache, verified (the notebooks verify it again when they load it)."""
    from support import fetch as mnist

    started = time.monotonic()
    if build.dataset == "fashion-mnist" and not mnist.FASHION_DEBIAN_DIR.exists() and can_apt(build):
        with contextlib.suppress(BuildError):
            apt_install("dataset-fashion-mnist")
    try:
        if build.dataset == "mnist":
            cache, source = mnist.fetch_mnist()
        elif build.dataset == "fashion-mnist":
            cache, source, _ = mnist.fetch_fashion_mnist()
        else:
            return
    except mnist.MnistError as exc:
        raise BuildError(str(exc)) from None
    if not source.startswith("cache"):
        say(f"{build.dataset}: fetched from {source}, verified, cached in {cache}")
        timed("data", started)


# ---------------------------------------------------------------- the task notebooks


def stale_reason(build: Build, task: str) -> str | None:
    """Why `task`'s results must be made again; None when they already carry this build's fingerprint."""
    from support.results import ResultsError, fingerprint, load_results

    try:
        load_results(task, results_dir=build.dir / "results", expected_key=fingerprint(task, build.params[task])["key"])
        return None
    except ResultsError as exc:
        return str(exc).split(": ")[0] if "missing" not in str(exc) else "no results yet"


def step_task(build: Build, task: str, reason: str, extra: dict | None = None) -> list[str]:
    """Run `task`.ipynb (with `extra` run parameters) into the build; lines to print."""
    from support.results import ResultsError, fingerprint, read_results

    expected = fingerprint(task, build.params[task])
    started = time.monotonic()
    staging = staging_dir(build, task)
    parameters = {**build.params[task], "progress": False, "out_dir": str(staging), **(extra or {})}
    run_notebook(ROOT / f"{task}.ipynb", staging / "notebooks" / f"{task}.ipynb", parameters)
    try:
        record = read_results(staging / "results" / f"{task}.json")
    except ResultsError as exc:
        raise BuildError(f"{task}.ipynb ran but its results are not usable: {exc}") from None
    if record["fingerprint"]["key"] != expected["key"]:
        raise BuildError(f"{task}.ipynb changed (or a module did) while it ran: run the build again")
    for folder in ("figures", "models", "notebooks"):  # the results file last: it vouches for the rest
        for path in sorted((staging / folder).glob("*")) if (staging / folder).exists() else ():
            if not path.name.startswith("."):
                publish(path, build.dir / folder / path.name)
    publish(staging / "results" / f"{task}.json", build.dir / "results" / f"{task}.json")
    shutil.rmtree(staging, ignore_errors=True)
    return [f"{task}.ipynb ran ({reason})", f"==> {task + '.ipynb':24} {time.monotonic() - started:.1f} s"]


def stale_tasks(build: Build) -> dict[str, str]:
    """{task: why its results must be made again} for the tasks whose results are not this build's."""
    return {task: reason for task in TASKS if (reason := stale_reason(build, task))}


def step_figures(build: Build, stale: dict[str, str] | None = None, one_left=None) -> dict[str, str]:
    """The task notebooks whose results are `stale` (default: stale_tasks), all at once; {task: key}.

    Task 4 reuses Task 3's run as its lambda = 0 run: it trains its other lambdas meanwhile, and waits for that
    run at the end while the file `task3.running` says Task 3 is still running. `one_left()` is called once, when
    at most one notebook is still running (a core is then free).
    """
    from concurrent.futures import as_completed

    STOP.clear()  # a failure of an earlier build in this process (make watch) stopped its commands
    if stale is None:
        step_data(build)
        stale = stale_tasks(build)
    pending = build.staging / "task3.running"
    if "task3" in stale:
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.touch()

    def task3() -> list[str]:
        try:
            return step_task(build, "task3", stale["task3"])
        finally:
            pending.unlink(missing_ok=True)  # after its run is published (or it failed): Task 4 stops waiting

    runs = {"task2": lambda: step_task(build, "task2", stale["task2"]), "task3": task3,
            "task4": lambda: step_task(build, "task4", stale["task4"], {"task3_dir": str(build.dir),
                                                                         "task3_pending": str(pending)})}
    with ThreadPoolExecutor(max_workers=len(TASKS)) as pool:
        futures = [pool.submit(runs[task]) for task in stale]
        try:
            if one_left and len(futures) <= 1:
                one_left()
            for done, future in enumerate(as_completed(futures), 1):
                for line in future.result():
                    say(line)
                if one_left and len(futures) - done == 1:
                    one_left()
        except BaseException:
            STOP.set()  # stop the notebooks still running
            raise
    return result_keys(build)


def result_keys(build: Build) -> dict[str, str]:
    """{task: the fingerprint key of its results in the build}; ResultsError if one is unusable."""
    from support.results import read_results

    return {task: read_results(build.dir / "results" / f"{task}.json")["fingerprint"]["key"] for task in TASKS}


# ---------------------------------------------------------------- the report


def report_fingerprints(build: Build, keys: dict[str, str]) -> dict[str, str]:
    """{"code": what the report's outputs depend on, "full": that and its prose (Markdown cells)}.

    code: the code cells, the results they read, the modules, the versions. An edit of the prose alone changes
    `full` but not `code`: the outputs of the last run are then reused and only the Markdown is new.
    """
    from support.results import REPORT_MODULES, read_results, sha256_bytes, sha256_json, versions

    cells = [(c["cell_type"], "".join(c["source"])) for c in json.loads((ROOT / "report.ipynb").read_text())["cells"]]
    code = sha256_json({
        "format": 2,  # of the executed report's build metadata (2: with the sources manifest)
        "code": [source for kind, source in cells if kind == "code"],
        "results": {task: read_results(build.dir / "results" / f"{task}.json")["content_sha256"] for task in keys},
        "modules": {name: sha256_bytes((ROOT / name).read_bytes()) for name in REPORT_MODULES},
        "versions": versions(),
    })
    return {"code": code, "full": sha256_json({"code": code, "cells": cells})}


def recorded(notebook: Path) -> dict:
    """The build metadata an executed report carries ({} when there is none)."""
    try:
        return json.loads(notebook.read_text())["metadata"]["build"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def with_new_prose(executed: dict, source: dict) -> dict:
    """The executed report with the source's Markdown cells: its code cells (and their outputs) are the same."""
    done = iter(c for c in executed["cells"] if c["cell_type"] == "code"
                and "injected-parameters" not in c.get("metadata", {}).get("tags", []))
    injected = [c for c in executed["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    cells = []
    for cell in source["cells"]:
        cells.append(next(done) if cell["cell_type"] == "code" else cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cells += injected
    return {**executed, "cells": cells}


def report_change(build: Build, keys: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(what the executed report needs against these results: "none", "prose" or "code", its fingerprints)."""
    fingerprints, before = report_fingerprints(build, keys), recorded(build.dir / "notebooks" / "report.ipynb")
    if before.get("fingerprint") == fingerprints["full"]:
        return "none", fingerprints
    return ("prose" if before.get("code") == fingerprints["code"] else "code"), fingerprints


def start_report_run(build: Build, stale: dict[str, str]) -> tuple[NotebookRun | None, bool]:
    """(the report's runner, whether the report changes). The runner is started now when the report will have to
    run (a task notebook is `stale`, or the report's code or results changed), so that its kernel starts while the
    task notebooks run; None when only its prose changed, or nothing."""
    from support.results import ResultsError

    if not stale:
        try:
            change, _ = report_change(build, result_keys(build))
        except ResultsError:
            return None, True
        if change != "code":
            return None, change == "prose"
    return NotebookRun(ROOT / "report.ipynb", staging_dir(build, "report") / "report.ipynb"), True


def step_report(build: Build, keys: dict[str, str], ahead: NotebookRun | None = None) -> Path:
    """build/notebooks/report.ipynb executed against these results, unless it already is.

    When only the prose changed, the outputs of the last run are kept and the Markdown cells replaced. `ahead`:
    the report's runner started before (start_report_run), used if the report runs and stopped if not.
    """
    executed = build.dir / "notebooks" / "report.ipynb"
    try:
        change, fingerprints = report_change(build, keys)
        if change == "none":
            return executed
        started = time.monotonic()
        if change == "prose":
            out = staging_dir(build, "report") / "report.ipynb"
            book = with_new_prose(json.loads(executed.read_text()), json.loads((ROOT / "report.ipynb").read_text()))
            label = "report.ipynb (prose)"
        else:
            run = ahead or NotebookRun(ROOT / "report.ipynb", staging_dir(build, "report") / "report.ipynb")
            ahead = None
            run.run({"build_dir": str(build.dir), "expected_keys": keys})
            out = run.out
            book = json.loads(out.read_text())
            label = "report.ipynb"
    finally:
        if ahead is not None:
            ahead.cancel()
    from support.fetch import DATASET_NAMES

    title = json.loads((ROOT / "report.ipynb").read_text())["metadata"].get("title", "Report")
    book["metadata"]["title"] = f"{title} on {DATASET_NAMES[build.dataset]}"  # the title names the data set
    for index, cell in enumerate(book["cells"]):  # a cell added by hand may lack one: nbformat warns at each read
        cell.setdefault("id", f"added-{index}")
    book["metadata"]["build"] = {"fingerprint": fingerprints["full"], "code": fingerprints["code"],
                                 "sources": source_manifest()}
    out.write_text(json.dumps(book, indent=1))
    publish(out, executed)
    timed(label, started)
    return executed


def source_manifest() -> dict[str, str]:
    """{file: SHA-256} of every source the report's numbers and prose come from."""
    from support.results import REPORT_MODULES

    names = ("report.ipynb", *(f"{t}.ipynb" for t in TASKS), *REPORT_MODULES)
    return {name: file_sha256(ROOT / name) for name in names}


def pandoc_env() -> dict:
    """The environment with the pandoc of the pypandoc-binary wheel first on PATH (nbconvert calls `pandoc`)."""
    import pypandoc

    return {**os.environ, "PATH": str(Path(pypandoc.get_pandoc_path()).parent) + os.pathsep + os.environ["PATH"]}


def latex_ready() -> bool:
    if not shutil.which("xelatex") or not shutil.which("kpsewhich"):
        return False
    code, output = run_command(["kpsewhich", *LATEX_STYLES])
    return len(output.split()) == len(LATEX_STYLES)


def step_tex(build: Build) -> bool:
    """Whether the LaTeX route can run: xelatex and its styles present, or installed now (root, Debian)."""
    if latex_ready():
        return True
    if can_apt(build):
        apt_install(LATEX_PACKAGES)
        return latex_ready()
    return False


INSTALL_TEX = ("for the LaTeX route install TeX Live: Debian/Ubuntu `sudo apt-get install --no-install-recommends "
               f"{LATEX_PACKAGES}`, macOS `brew install --cask mactex-no-gui`, Windows MiKTeX or TeX Live")


def choose_engine(build: Build) -> str:
    requested = build.variables["PDF_ENGINE"]
    if requested == "typst":
        return "typst"
    if step_tex(build):
        return "latex"
    if requested == "latex":
        raise BuildError(f"PDF_ENGINE=latex, but xelatex (or one of {', '.join(LATEX_STYLES)}) is missing: "
                         f"{INSTALL_TEX}; or PDF_ENGINE=typst. Nothing was built.")
    return "typst"


def export(executed: Path, work: Path, exporter) -> str:
    """The executed report through an nbconvert exporter (typst_route.export_notebook); BuildError if it fails."""
    from tools.typst_route import export_notebook

    try:
        return export_notebook(executed, work, exporter)
    except OSError:
        raise
    except Exception as exc:  # nbconvert's and pandoc's errors have no common base class
        raise BuildError(f"nbconvert could not convert the report: {type(exc).__name__}: {exc}") from None


def latex_pdf(executed: Path, work: Path) -> Path:
    """nbconvert's LaTeX (inputs hidden; in this process: no second start-up), then one xelatex pass."""
    from nbconvert import LatexExporter

    from tools.latex_route import markdown_as_latex, pngs_as_pdfs

    os.environ.update(PATH=pandoc_env()["PATH"])  # for any pandoc nbconvert would still start
    book = markdown_as_latex(json.loads(executed.read_text()), executed.parent.parent / "pdf" / "markdown-latex.json")
    (work / "report.ipynb").write_text(json.dumps(book))
    body = export(work / "report.ipynb", work, LatexExporter(exclude_input=True, exclude_input_prompt=True,
                                                             exclude_output_prompt=True))
    # pandoc >= 3.8.2 (the wheel's) writes \def\LTcaptype{none} for tables without a caption, and nbconvert's
    # template does not define that counter (jupyter/nbconvert#2243): define it when missing.
    body = body.replace("\\begin{document}", NONE_COUNTER + "\\begin{document}", 1)
    # the headings as the PDF's outline in one pass (hyperref alone needs a second); check_pdf reads them there
    body = body.replace("\\begin{document}", "\\usepackage{bookmark}\n\\begin{document}", 1)
    # a figure and its caption (the paragraph after its image) on one page: one unbreakable box
    body = FIGURE_THEN_CAPTION.sub(lambda m: "\\par\\noindent\\begin{minipage}{\\linewidth}\n" + m[1] + m[2]
                                   + "\n\\end{minipage}\\par" + m[3], body)
    body = pngs_as_pdfs(body, work)
    (work / "report.tex").write_text(body, encoding="utf-8")
    # a PNG that stays PNG (pngs_as_pdfs) is recompressed at zlib level 9 by default: 6 takes a third of the time
    # the date under the title (\today) and the PDF's dates and ID from SOURCE_DATE_EPOCH: the same bytes each build
    date = {"SOURCE_DATE_EPOCH": str(pdf_epoch()), "FORCE_SOURCE_DATE": "1"}
    code, output = run_command(["xelatex", "-output-driver=xdvipdfmx -z 6", "-interaction=nonstopmode",
                                "-halt-on-error", "report.tex"], cwd=work, env={**os.environ, **date})
    if code or not (work / "report.pdf").exists():
        log = (work / "report.log").read_text(errors="replace") if (work / "report.log").exists() else output
        errors = [line for line in log.splitlines() if line.startswith("!")] or log.splitlines()[-20:]
        kept = work.parent.parent / "report.log"
        with contextlib.suppress(OSError):
            shutil.copyfile(work / "report.log", kept)
        raise BuildError("xelatex failed on the report:\n" + "\n".join(errors[:10]) + f"\nfull log: {kept}")
    return work / "report.pdf"


def typst_pdf(executed: Path, work: Path, title: str) -> Path:
    from tools.typst_route import notebook_to_pdf_typst

    out = work / "report.pdf"
    notebook_to_pdf_typst(executed, out, title, epoch=pdf_epoch())
    return out


def check_pdf(path: Path, min_pages: int = MIN_PAGES, headings=HEADINGS) -> int:
    """The PDF's page count; BuildError unless it opens, has `min_pages` pages and every heading.

    The headings are looked for in the PDF's outline (both routes write one), then in its text (slower).
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    def titles(outline) -> list[str]:
        return [t for item in outline for t in (titles(item) if isinstance(item, list) else [item.title])]

    try:
        reader = PdfReader(path)
        pages = len(reader.pages)
        found = "\n".join(titles(reader.outline))
        if any(h not in found for h in headings):
            found = "\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, OSError, ValueError) as exc:
        raise BuildError(f"{path} is not a readable PDF ({exc})") from None
    missing = [h for h in headings if h not in found]
    if pages < min_pages or missing:
        raise BuildError(f"{path} is not whole: {pages} pages (at least {min_pages})"
                         + (f", missing {', '.join(missing)}" if missing else ""))
    return pages


def step_pdf(build: Build, executed: Path) -> None:
    """build.pdf from the executed report, through LaTeX or Typst, unless it already is that PDF."""
    from support.fileio import atomic_write
    from support.results import sha256_json

    engine = choose_engine(build)
    if engine == "latex":
        other = "PDF_ENGINE=typst for the route without TeX"
    else:
        other = "PDF_ENGINE=latex for the LaTeX route" if latex_ready() else INSTALL_TEX
    state_path = build.dir / "pdf" / f"{build.pdf.name}.state.json"
    routes = ("tools/pipeline.py", "tools/latex_route.py", "tools/typst_route.py")
    key = sha256_json({"report": recorded(executed).get("fingerprint"), "engine": engine,  # and the routes' code
                       "routes": [file_sha256(ROOT / name) for name in routes],
                       "date": os.environ.get("SOURCE_DATE_EPOCH", "").strip()})  # a new day alone: no rebuild
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_path.read_text())
        if state["key"] == key and build.pdf.exists() and file_sha256(build.pdf) == state["sha256"]:
            return
    started = time.monotonic()
    say(f"PDF through {'LaTeX (nbconvert, xelatex)' if engine == 'latex' else 'Typst (pandoc, typst)'}; {other}")
    work = staging_dir(build, "pdf")
    title = json.loads(executed.read_text())["metadata"].get("title", "Report")
    pdf = latex_pdf(executed, work) if engine == "latex" else typst_pdf(executed, work, title)
    pages = check_pdf(pdf)
    atomic_write(build.pdf, pdf.read_bytes())
    atomic_write(state_path, json.dumps({"key": key, "sha256": file_sha256(build.pdf), "engine": engine}).encode())
    timed(f"PDF ({engine}, {pages} pages)", started)


def step_html(build: Build, executed: Path) -> None:
    import pypandoc
    from nbconvert import MarkdownExporter

    work = staging_dir(build, "html")
    (work / "report.md").write_text(export(executed, work, MarkdownExporter(exclude_input=True)), encoding="utf-8")
    title = json.loads(executed.read_text())["metadata"].get("title", "Report")
    code, output = run_command([pypandoc.get_pandoc_path(), "report.md", "--standalone", "--embed-resources",
                                "--mathml", "--metadata", f"title={title}", "-o", "report.html"], cwd=work)
    if code:
        raise BuildError(f"pandoc could not write the HTML:\n{output[-3000:]}")
    publish(work / "report.html", build.html)


# ---------------------------------------------------------------- hand-in

SUBMISSION = ("*.py", "*.ipynb", "requirements.txt", "requirements.lock", "environment.yml", "pyproject.toml",
              "README.md", "Makefile", "support/*.py", "tools/*.py", "tests/*.py", "bench/*.py")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same zip


def submission_files() -> list[str]:
    return sorted({p.relative_to(ROOT).as_posix() for pattern in SUBMISSION for p in ROOT.glob(pattern)
                   if p.is_file()})


def clean_notebook(path: Path) -> bytes:
    """The notebook without outputs and execution counts (as it is committed; a Jupyter session may have saved some)."""
    book = json.loads(path.read_text(encoding="utf-8"))
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return (json.dumps(book, indent=1, ensure_ascii=False) + "\n").encode()


def changed_since_report(build: Build) -> list[str]:
    """The sources whose content differs from what build.pdf was built from."""
    executed = build.dir / "notebooks" / "report.ipynb"
    built_from = json.loads(executed.read_text())["metadata"]["build"]["sources"]
    return [name for name, digest in built_from.items()
            if not (ROOT / name).exists() or file_sha256(ROOT / name) != digest]


def target_submission(build: Build) -> None:
    """The course's two files: the PDF brought up to date, and the code it was built from as assignment_code.zip."""
    import io
    import zipfile

    target_report(build)
    out = ROOT / "assignment_code.zip"
    with build_lock(build):
        changed = changed_since_report(build)
        if changed:
            raise BuildError(f"{', '.join(changed)} changed after {build.pdf.name} was built from them (an edit during "
                             "the build?): run make submission again. Nothing was written.")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in submission_files():
                data = clean_notebook(ROOT / name) if name.endswith(".ipynb") else (ROOT / name).read_bytes()
                archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, zipfile.ZIP_DEFLATED)
        changed = changed_since_report(build)  # an edit while the zip was written
        if changed:
            raise BuildError(f"{', '.join(changed)} changed while the zip was written: run make submission again")
        from support.fileio import atomic_write

        atomic_write(out, buffer.getvalue())
    print("Hand in these two files:")
    for path in (build.pdf, out):
        print(f"  {path}  ({path.stat().st_size / 1024:,.0f} KB)")


# ---------------------------------------------------------------- targets


def print_params(build: Build) -> None:
    from experiments import TASK_CONFIGS

    for task, values in build.params.items():
        changed = {k: v for k, v in values.items() if v != TASK_CONFIGS[task]().as_dict()[k]}
        print(f"{task}: " + (", ".join(f"{k}={json.dumps(v)}" for k, v in changed.items()) or "the course's defaults"))


def figures_and_report(build: Build, warm_up: str | None = None) -> Path:
    """The task notebooks, then the report. When one task notebook is left running (a core is free), the report's
    runner starts if the report will run, and the module `warm_up` of the next step is imported in a thread if the
    report changes: both are ready when the report's turn comes."""
    step_data(build)
    stale = stale_tasks(build)
    ahead = None

    def start_next() -> None:
        nonlocal ahead
        ahead, changes = start_report_run(build, stale)
        if changes and warm_up:
            threading.Thread(target=importlib.import_module, args=(warm_up,)).start()

    try:
        keys = step_figures(build, stale, one_left=start_next)
    except BaseException:
        if ahead is not None:
            ahead.cancel()
        raise
    return step_report(build, keys, ahead)


def target_report(build: Build) -> None:
    with build_lock(build):
        started = time.monotonic()  # after a wait for another build
        step_pdf(build, figures_and_report(build, warm_up="nbconvert"))
    print(f"report: {build.pdf} ({time.monotonic() - started:.0f} s)")


def target_html(build: Build) -> None:
    with build_lock(build):
        step_html(build, figures_and_report(build, warm_up="nbconvert"))
    print(f"html: {build.html}")


def target_watch(build: Build) -> None:
    """Rebuild the PDF whenever a notebook or a module is saved with new content; Ctrl-C stops."""
    def sources() -> dict[str, str]:
        patterns = ("*.ipynb", "*.py", "support/*.py", "tools/*.py")
        return {p.relative_to(ROOT).as_posix(): file_sha256(p)
                for pattern in patterns for p in sorted(ROOT.glob(pattern))}

    seen = None
    print(f"watching the notebooks and modules of {ROOT}; Ctrl-C stops")
    while True:
        now = sources()
        if now != seen:
            if seen is not None:
                print("changed: " + ", ".join(sorted(n for n in now if now.get(n) != seen.get(n))), flush=True)
            try:
                target_report(build)
            except BuildError as exc:
                say(f"error: {exc}\nwatching for the next save")
            seen = now
        time.sleep(1.0)


def target_figures(build: Build) -> None:
    with build_lock(build):
        step_figures(build)
    print(f"figures: {build.dir / 'figures'}, results: {build.dir / 'results'}")


MAX_CLIPPED = 0.05  # the share of a figure's points its y-range may leave out


def check_report(build: Build) -> list[str]:
    """What is wrong with build.pdf as a report of build.dir's results: [] when nothing.

    Every figure of the results is in the PDF with its caption, each task heading is there, no figure's y-range
    leaves out more than MAX_CLIPPED of its points, and the title names the data set.
    """
    from pypdf import PdfReader

    from support.fetch import DATASET_NAMES
    from support.results import ResultsError, read_results

    problems = []
    try:
        check_pdf(build.pdf)
    except BuildError as exc:
        problems.append(str(exc))
    reader = PdfReader(build.pdf)
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    first_lines = " ".join((reader.pages[0].extract_text() or "").split()[:40])
    name = DATASET_NAMES[build.dataset]
    if name not in first_lines:
        problems.append(f"the title does not name the data set ({name}): {first_lines[:100]!r}")
    figures = 0
    for task in TASKS:
        try:
            record = read_results(build.dir / "results" / f"{task}.json")
        except ResultsError as exc:
            problems.append(str(exc))
            continue
        figures += len(record["figures"])
        for figure, ranges in record["figure_notes"].items():
            for r in ranges if isinstance(ranges, list) else [ranges]:
                if r["points"] and r["outside"] > MAX_CLIPPED * r["points"]:
                    problems.append(f"{figure}: its y-range {r['range']} leaves out {r['outside']} of {r['points']} "
                                    f"points, more than {MAX_CLIPPED:.0%}")
    captions = [n for n in range(1, figures + 1) if f"Figure {n}." in text]
    if len(captions) != figures or f"Figure {figures + 1}." in text:
        problems.append(f"{figures} figures in the results, captions for {len(captions)} of them in the PDF")
    return problems


def target_check_report(build: Build) -> None:
    problems = check_report(build)
    if problems:
        raise BuildError(f"check-report: {build.pdf}:\n  " + "\n  ".join(problems))
    print(f"check-report: {build.pdf}: whole (every heading and figure), every figure's range shows at least "
          f"{1 - MAX_CLIPPED:.0%} of its points, the title names {build.dataset}")


def target_tex(build: Build) -> None:
    if not step_tex(build):
        raise BuildError(f"xelatex is not ready: {INSTALL_TEX}")
    print("tex: xelatex and its styles are ready")


def passthrough(command: list[str]) -> None:
    code = subprocess.call(command, cwd=ROOT)
    if code:
        raise SystemExit(code)


# rfc3987-syntax (jsonschema's optional "iri" checker, pulled in by jupyter-events) builds a parser when imported:
# 1-1.5 s in every process that imports nbformat, so in each notebook run and PDF (python-jsonschema/jsonschema#1428).
UNLOCKED = ("--no-emit-package", "rfc3987-syntax", "--no-emit-package", "lark")

TARGETS = {
    "setup": lambda build: print(f"setup: {sys.executable} has the locked packages"),
    "params": print_params,
    "data": lambda build: (step_data(build), print(f"data: {build.dataset} verified")),
    "figures": target_figures,
    "report": target_report,
    "html": target_html,
    "tex": target_tex,
    "check-report": target_check_report,
    "submission": target_submission,
    "watch": target_watch,
    "test": lambda build: passthrough(python("-m", "pytest", *shlex.split(build.variables["PYTEST_ARGS"]))),
    "lint": lambda build: (passthrough(python("-m", "ruff", "check", ".")),
                           passthrough(python(str(ROOT / "tools" / "check_notebooks.py")))),
    "lock": lambda build: passthrough(python("-m", "uv", "pip", "compile", "--universal", "--generate-hashes",
                                             "--python-version", "3.11", "-q", "requirements.txt", "-o",
                                             "requirements.lock", *UNLOCKED)),
    "bench": lambda build: passthrough(python(str(ROOT / "bench" / "run.py"),
                                              *shlex.split(build.variables["BENCH_ARGS"]))),
    "lab": lambda build: passthrough(python("-m", "jupyterlab")),
}


def run(targets: list[str], variables: dict[str, str]) -> int:
    build = context(variables)
    try:
        for target in targets:
            TARGETS[target](build)
    except KeyboardInterrupt:
        STOP.set()
        kept = f"; {build.pdf.name} is the last good one" if build.pdf.exists() else ""
        say(f"interrupted: the steps that had finished are kept, nothing half-done is{kept}")
        return 130
    except OSError as exc:
        where = exc.filename or "a file"
        raise BuildError(f"could not read or write {where}: {exc.strerror or exc}; the last good outputs are kept"
                         ) from None
    return 0
