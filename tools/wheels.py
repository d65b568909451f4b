"""Whether requirements.lock installs from wheels alone on each platform the README names: uv resolves the lock for
each platform and Python as pip would install it there (`--only-binary :all: --require-hashes`, a dry run against
PyPI's index), so no student needs a compiler.

    python -m tools.wheels          # exit 1 if a platform served lacks a wheel; names what is not served
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

from tools.common import ROOT

SERVED = {"Linux x86_64": "x86_64-manylinux_2_28", "Linux aarch64": "aarch64-manylinux_2_28",
          "macOS arm64 (Apple silicon)": "aarch64-apple-darwin", "macOS x86_64 (Intel)": "x86_64-apple-darwin",
          "Windows x64": "x86_64-pc-windows-msvc"}
NOT_SERVED = {"Windows arm64": "aarch64-pc-windows-msvc"}  # pypandoc-binary and typst have no wheel for it
PYTHONS = ("3.11", "3.12", "3.13")
MACOS = "12.0"  # the oldest macOS served (uv's default for an Intel Mac is 13.0)


def missing(platform: str, python: str, run=subprocess.run) -> str | None:
    """Why the lock does not install from wheels on `platform` (uv's name of it) with `python`, or None if it does."""
    with tempfile.TemporaryDirectory() as target:
        proc = run([sys.executable, "-m", "uv", "pip", "install", "--dry-run", "--no-deps", "--only-binary", ":all:",
                    "--require-hashes", "--python-platform", platform, "--python-version", python, "--target", target,
                    "-r", str(ROOT / "requirements.lock")], capture_output=True, text=True,
                   env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS})
    if proc.returncode == 0:
        return None
    found = re.findall(r"(\S+==\S+) has no wheels with a matching platform tag", proc.stderr)
    return ", ".join(dict.fromkeys(found)) or (proc.stderr.strip().splitlines() or ["uv failed"])[-1]


def main(run=subprocess.run) -> int:
    status = 0
    for name, platform in {**SERVED, **NOT_SERVED}.items():
        gaps = {python: gap for python in PYTHONS if (gap := missing(platform, python, run))}
        if not gaps:
            print(f"{name}: a wheel for every pin, Python {PYTHONS[0]} to {PYTHONS[-1]}")
            continue
        listed = "; ".join(f"Python {python}: {gap}" for python, gap in gaps.items())
        print(f"{name}: no wheel for {listed}" + ("" if name in SERVED else " (not served: the README says so)"))
        status |= name in SERVED
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
