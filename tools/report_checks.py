"""`make check-report`: a built PDF read back against its results: headings, figures and captions, y-ranges, title."""

from __future__ import annotations

from mnist import DATASET_NAMES
from support.project import MIN_PAGES, TASKS
from support.results import ResultsError, figure_ranges, read_results
from tools.common import BuildError, file_sha256
from tools.context import Build
from tools.pdf import check_pdf, pdf_state
from tools.report import recorded
from tools.tasks import expected_keys

MAX_CLIPPED = 0.05  # the share of a figure's points its y-range may leave out


def check_report(build: Build) -> list[str]:
    """What is wrong with build.pdf as a report of build.dir's results: [] when nothing.

    It is the PDF of the parameters asked for (the results' fingerprints), unchanged since it was made; every figure
    of the results is in it with its caption, each task heading is there, no figure's y-range leaves out more than
    MAX_CLIPPED of its points, and the title names the data set.
    """
    from pypdf import PdfReader  # 0.3 s to import: only when a PDF is checked
    from pypdf.errors import PdfReadError  # with it

    problems = []
    state, asked = pdf_state(build), expected_keys(build)
    if not build.pdf.exists() or file_sha256(build.pdf) != state.get("sha256"):
        problems.append(f"{build.pdf} is not the PDF this build folder made last (changed, or made elsewhere): run "
                        "make report with the same parameters first")
    elif state.get("keys") != asked:
        problems.append(f"{build.pdf} was made with other parameters (or code, or data) than these: run make report "
                        "with them first")
    try:  # a partial report (tasks pending) may be short
        check_pdf(build.pdf, min_pages=1 if recorded(build.dir / "notebooks" / "report.ipynb").get("pending") else
                  MIN_PAGES)
    except BuildError as exc:
        problems.append(str(exc))
    try:
        reader = PdfReader(build.pdf)
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        first_lines = " ".join((reader.pages[0].extract_text() or "").split()[:40])
    except (PdfReadError, OSError, ValueError, IndexError):
        return problems  # missing or unreadable: said above
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
        for figure, ranges in figure_ranges(record).items():
            for r in ranges:
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

