"""The PDF from the executed report, through LaTeX (nbconvert, xelatex) or, without TeX, Typst (pandoc and typst
wheels), checked before it replaces the last one; and the HTML."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pypandoc

from support.fileio import atomic_write, write_file
from support.inline import ExpressionError, render
from support.project import HEADINGS, MIN_PAGES
from support.results import sha256_json
from support.sources import project_modules
from tools.common import ROOT, BuildError, file_sha256, say
from tools.context import Build, pdf_epoch
from tools.latex_route import markdown_as_latex, pngs_as_pdfs
from tools.processes import apt_install, can_apt, publish, run_command, staging_dir, timed
from tools.report import read_sealed
from tools.typst_route import export_notebook, notebook_to_pdf_typst

LATEX_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic"


LATEX_STYLES = ("eurosym.sty", "ulem.sty", "adjustbox.sty", "bookmark.sty")
TEMPLATES = ROOT / "support" / "jupyter" / "templates"


MISSING_GLYPH = re.compile(r"^Missing character: There is no (\S+)", re.M)
FIGURE_THEN_CAPTION = re.compile(r"(\\begin\{center\}\s*\\adjustimage\{[^\n]*\n\s*\\end\{center\}\s*"
                                 r"\{ \\hspace\*\{\\fill\} \\\\\}\s*\n)(\s*\\textbf\{Figure \d+\.\}.*?)(\n\s*\n)", re.S)


def pandoc_env() -> dict:
    """The environment with the pandoc of the pypandoc-binary wheel first on PATH (nbconvert calls `pandoc`)."""
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
    try:
        return export_notebook(executed, work, exporter)
    except OSError:
        raise
    except Exception as exc:  # nbconvert's and pandoc's errors have no common base class
        raise BuildError(f"nbconvert could not convert the report: {type(exc).__name__}: {exc}") from None


def latex_pdf(executed: Path, work: Path, cache: Path) -> Path:
    """nbconvert's LaTeX (inputs hidden; in this process: no second start-up), then one xelatex pass; `cache` holds
    the LaTeX of Markdown pieces converted before."""
    from nbconvert import LatexExporter  # 1.2 s to import: only where a PDF is made

    os.environ.update(PATH=pandoc_env()["PATH"])  # for any pandoc nbconvert would still start
    book = markdown_as_latex(json.loads(executed.read_text()), cache)
    write_file(work / "report.ipynb", json.dumps(book))
    # Jupyter's own export's template (support/jupyter/templates/report): the counter pandoc's tables need, and the
    # headings as the PDF's outline in one pass, which check_pdf reads
    body = export(work / "report.ipynb", work, LatexExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, template_name="report",
        extra_template_basedirs=[str(TEMPLATES)]))
    # a figure and its caption (the paragraph after its image) on one page: one unbreakable box
    body = FIGURE_THEN_CAPTION.sub(lambda m: "\\par\\noindent\\begin{minipage}{\\linewidth}\n" + m[1] + m[2]
                                   + "\n\\end{minipage}\\par" + m[3], body)
    body = pngs_as_pdfs(body, work)
    write_file(work / "report.tex", body)
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
    missing = sorted(set(MISSING_GLYPH.findall((work / "report.log").read_text(errors="replace"))))
    if missing:  # xelatex only logs them: the characters would vanish from the PDF without a word
        say(f"warning: the LaTeX route's font has no glyph for {' '.join(missing)}: they are missing from the PDF; "
            "write them as LaTeX math, or use PDF_ENGINE=typst (which has CJK)")
    return work / "report.pdf"


def typst_pdf(executed: Path, work: Path, title: str) -> Path:
    """The PDF through pandoc and Typst; BuildError if a converter fails (their errors have no common base class)."""
    out, epoch = work / "report.pdf", pdf_epoch()
    try:
        notebook_to_pdf_typst(executed, out, title, epoch)
    except OSError:
        raise
    except Exception as exc:
        raise BuildError(f"the Typst route could not make the PDF: {type(exc).__name__}: {exc}") from None
    return out


def check_pdf(path: Path, min_pages: int = MIN_PAGES, headings=HEADINGS) -> int:
    """The PDF's page count; BuildError unless it opens, has `min_pages` pages and every heading.

    The headings are looked for in the PDF's outline (both routes write one), then in its text (slower).
    """
    from pypdf import PdfReader  # 0.3 s to import: only where a PDF is made or checked
    from pypdf.errors import PdfReadError  # with it

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


def sealed(executed: Path) -> tuple[bytes, dict]:
    """(the executed report's bytes, its build record), read once; BuildError if its content is not what the report
    step wrote (an edit by hand: the next build runs the report again)."""
    snapshot, made = read_sealed(executed)
    if not made:
        raise BuildError(f"{executed} was changed after the report step wrote it: run the build again (it runs the "
                         "report again; no PDF is made of an altered report)")
    return snapshot, made


def rendered(snapshot: bytes) -> tuple[bytes, str]:
    """(the executed report as the PDF shows it: its answers' values written in (support/inline.render), its
    title)."""
    try:
        book = render(json.loads(snapshot))
    except ExpressionError as exc:
        raise BuildError(f"report.ipynb: {exc}") from None
    return json.dumps(book, indent=1).encode(), book["metadata"].get("title", "Report")


def state_path(build: Build) -> Path:
    return build.dir / "pdf" / f"{build.pdf.name}.state.json"


def pdf_state(build: Build) -> dict:
    """What the last PDF at build.pdf was made from ({} when unknown): its key, its SHA-256, the results' keys."""
    try:
        return json.loads(state_path(build).read_text())
    except (OSError, ValueError):
        return {}


def step_pdf(build: Build, executed: Path) -> None:
    """build.pdf from the executed report, through LaTeX or Typst, unless it already is that PDF."""
    engine = choose_engine(build)
    snapshot, made = sealed(executed)
    routes = project_modules(Path(__file__))  # this module's code and what it imports of the project, found by rule
    template = sorted((TEMPLATES / "report").glob("*"))
    key = sha256_json({"report": made["content_sha256"], "engine": engine,  # the executed report's content
                       "routes": [file_sha256(path) for path in [Path(__file__), *routes, *template]],  # their code
                       "date": os.environ.get("SOURCE_DATE_EPOCH", "").strip()})  # a new day alone: no rebuild
    state = pdf_state(build)
    if state.get("key") == key and build.pdf.exists() and file_sha256(build.pdf) == state.get("sha256"):
        return
    started = time.monotonic()
    if engine == "latex":
        other = "PDF_ENGINE=typst for the route without TeX"
    else:
        other = "PDF_ENGINE=latex for the LaTeX route" if latex_ready() else INSTALL_TEX
    say(f"PDF through {'LaTeX (nbconvert, xelatex)' if engine == 'latex' else 'Typst (pandoc, typst)'}; {other}")
    work = staging_dir(build, "pdf")
    shown, title = rendered(snapshot)
    source = write_file(work / "executed.ipynb", shown)  # these bytes, checked, are what the PDF shows
    cache = build.dir / "pdf" / "markdown-latex.json"
    pdf = latex_pdf(source, work, cache) if engine == "latex" else typst_pdf(source, work, title)
    pages = check_pdf(pdf, min_pages=1 if made.get("pending") else MIN_PAGES)  # a partial report may be short
    atomic_write(build.pdf, pdf.read_bytes())
    state = {"key": key, "sha256": file_sha256(build.pdf), "keys": made["keys"]}
    atomic_write(state_path(build), json.dumps(state).encode())
    timed(f"PDF ({engine}, {pages} pages)", started)


def step_html(build: Build, executed: Path) -> None:
    from nbconvert import MarkdownExporter  # 1.2 s to import: only where HTML is made

    work = staging_dir(build, "html")
    shown, title = rendered(sealed(executed)[0])
    source = write_file(work / "executed.ipynb", shown)
    write_file(work / "report.md", export(source, work, MarkdownExporter(exclude_input=True)))
    code, output = run_command([pypandoc.get_pandoc_path(), "report.md", "--standalone", "--embed-resources",
                                "--mathml", "--metadata", f"title={title}", "-o", "report.html"], cwd=work)
    if code:
        raise BuildError(f"pandoc could not write the HTML:\n{output[-3000:]}")
    publish(work / "report.html", build.html)

