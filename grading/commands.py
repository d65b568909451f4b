"""The instructor's targets: `make grade SUBMISSION=...`, `make autograder`, `make release` (tools/targets.py calls
these; the student version has no grading/, and says so)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from grading.autograder import write_zip
from grading.grade import grade_all, table
from grading.hidden import mnist_here
from grading.mistakes import TYPICAL
from support.checks import CHECKS
from tools.common import ROOT, BuildError, say


def official_wanted(variables: dict) -> bool:
    """The hidden checks' official numbers need MNIST: run them when it is cached (OFFICIAL=auto), or as told."""
    wanted = variables.get("OFFICIAL", "auto")
    if wanted == "no":
        return False
    here = mnist_here()
    if not here:
        if wanted == "yes":
            raise BuildError("OFFICIAL=yes needs MNIST in its cache: run `make data` first")
        say("MNIST is not in its cache: the hidden checks of the official numbers are left out (`make data` adds "
            "them)")
    return here


def submissions(pattern: str) -> list[Path]:
    """The hand-ins SUBMISSION names: paths or globs, separated by spaces."""
    if not pattern.strip():
        raise BuildError("make grade needs SUBMISSION=<a hand-in zip, an assignment_code.zip or a folder; a glob such "
                         "as 'hand-ins/*.zip' for several>")
    whole = sorted(glob.glob(os.path.expanduser(pattern.strip())))
    if whole:  # one path (a space in it is part of it) or one glob
        return [Path(m).resolve() for m in whole]
    found = []
    for part in pattern.split():
        matches = sorted(glob.glob(os.path.expanduser(part))) or []
        if not matches:
            raise BuildError(f"SUBMISSION: nothing at {part!r} (several are separated by spaces; for a path with a "
                             "space in it, give it alone, or a glob such as 'hand-ins/*')")
        found += [Path(m).resolve() for m in matches]
    return list(dict.fromkeys(found))


def grade_command(variables: dict) -> None:
    paths = submissions(variables.get("SUBMISSION", ""))
    out = Path(variables.get("GRADE_DIR") or ROOT / "build" / "grading")
    official = official_wanted(variables)
    started = time.monotonic()

    def said(found) -> None:
        print(table(found) if len(paths) <= 3 else f"{found.name}: {found.score} of {found.max_score} points "
                                                   f"({found.seconds:.0f} s)", flush=True)

    grades = grade_all(paths, out, official, said=said)
    say(f"graded {len(grades)} hand-in{'s' if len(grades) > 1 else ''} in {time.monotonic() - started:.0f} s: "
        f"{out / 'grades.csv'}; each one's results.json (Gradescope's format) and results.txt in {out}/<name>/")


def autograder_command(variables: dict) -> None:
    out = write_zip(ROOT / "autograder.zip")
    say(f"{out}: upload it to Gradescope as the assignment's autograder (setup.sh installs the lock and MNIST; "
        "run_autograder grades /autograder/submission)")


# ---------------------------------------------------------------- make release: the release verified in one run


def _hand_in(code: Path, pdf: Path | None, out: Path) -> Path:
    """A hand-in zip as a student uploads it: report.pdf and assignment_code.zip of `code`."""
    inner = out.with_suffix(".code.zip")
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(code.rglob("*")):
            if path.is_file() and path.suffix not in (".zip", ".pdf", ".html") and not {
                    ".git", ".venv", "build", "data", "dist", "__pycache__"} & set(path.relative_to(code).parts):
                archive.write(path, path.relative_to(code).as_posix())
    with zipfile.ZipFile(out, "w") as archive:
        archive.write(inner, "assignment_code.zip")
        if pdf is not None and pdf.exists():
            archive.write(pdf, "report.pdf")
    inner.unlink()
    return out


def release_command(variables: dict) -> None:
    """The student version, its partial report, and the grader on the source's hand-in (full marks), a blank one
    (zero) and one per typical mistake (its own task's points lost, and no other), then autograder.zip tried against
    a stand-in /autograder: each verified, or BuildError listing what is not."""
    from tools.student import OUT, make_student, put_back_all, run_own  # the student version: tools' (its floor)

    started, problems, rows = time.monotonic(), [], []
    official = official_wanted(variables)
    make_student(OUT)
    say("its partial report ...")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDT4265_")}
    done = subprocess.run([sys.executable, str(OUT / "make.py"), "report", f"PY={sys.executable}", "PDF_ENGINE=typst",
                           f"MNIST_DIR={ROOT / 'data' / 'mnist'}"], cwd=OUT, env=env, capture_output=True, text=True)
    if done.returncode != 0 or "partial report: 16 of 16 tasks pending" not in done.stderr + done.stdout:
        problems.append(f"the blank student version's make report: exit {done.returncode}\n{done.stderr[-2000:]}")
    with tempfile.TemporaryDirectory(prefix="release-") as folder:
        work = Path(folder)
        say("the student version with the solutions put back: its make test and make check ...")
        put_back_all(OUT, work / "put back")
        for target, expected in (("test", " passed"), ("check", "8 done, 0 not started, 0 failing")):
            done = run_own(work / "put back", target, sys.executable)
            if done.returncode != 0 or expected not in done.stdout + done.stderr:
                problems.append(f"the student version with the solutions put back: make {target} (exit "
                                f"{done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
            rows.append((f"the student version, solutions put back: make {target}", None, None, 0.0,
                         done.returncode == 0 and expected in done.stdout + done.stderr))
        hand_ins = {"the source": _hand_in(ROOT, ROOT / "report.pdf", work / "source.zip"),
                    "blank": _hand_in(OUT, None, work / "blank.zip")}
        for name, mistake in TYPICAL.items():
            copy = work / name.replace(" ", "-").replace("/", "")
            shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "build", "data", "dist"))
            mistake.made_in(copy)
            hand_ins[name] = _hand_in(copy, None, work / f"{copy.name}.zip")
        grades = dict(zip(hand_ins, grade_all(list(hand_ins.values()), work / "graded", official)))
        full = grades["the source"].max_score
        for name, found in grades.items():
            by_task = found.by_task()
            if name == "the source":
                ok = found.score == full
            elif name == "blank":
                ok = found.score == 0
            else:
                task = TYPICAL[name].task
                lost = {t for t, (score, most) in by_task.items() if score < most}
                ok = lost == {task}
            rows.append((name, found.score, full, found.seconds, ok))
            if not ok:
                problems.append(f"{name}: {found.score} of {full}\n{table(found)}")
        say("autograder.zip against a stand-in /autograder ...")
        zip_path = write_zip(ROOT / "autograder.zip")
        stand_in = work / "autograder"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(stand_in / "source")
        (stand_in / "submission").mkdir()
        with zipfile.ZipFile(hand_ins["the source"]) as archive:
            archive.extractall(stand_in / "submission")
        run = stand_in / "source" / "run_autograder"
        run.chmod(0o755)
        done = subprocess.run([str(run)], env={**env, "AUTOGRADER_ROOT": str(stand_in),
                                               "AUTOGRADER_PYTHON": sys.executable,
                                               "MNIST_DIR": str(ROOT / "data" / "mnist")},
                              capture_output=True, text=True)
        from grading.results_schema import problems_of  # the format's checker: only here and in the tests

        results = stand_in / "results" / "results.json"
        wrong = problems_of(results) if results.exists() else ["no results.json"]
        if done.returncode != 0 or wrong:
            problems.append(f"run_autograder: exit {done.returncode}; {'; '.join(wrong)}\n{done.stderr[-2000:]}")
        rows.append(("autograder.zip on the source's hand-in: results.json in Gradescope's format", None, full, 0.0,
                     done.returncode == 0 and not wrong))
    say("\n".join(["release:", *(f"  {'ok  ' if ok else 'NOT '} {name}" + (f": {score} of {most} points" if score
                                 is not None else "") + (f" ({seconds:.0f} s)" if seconds else "")
                                 for name, score, most, seconds, ok in rows)]))
    if problems:
        raise BuildError("the release is not right:\n" + "\n".join(problems))
    say(f"release verified in {time.monotonic() - started:.0f} s: dist/student/ to hand out, autograder.zip to upload; "
        f"{len(CHECKS)} checks, {full} points")
