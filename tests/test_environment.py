"""The install routes name the same pinned packages: requirements.txt, environment.yml and the hashed lock."""

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_ON_PYPI = {"python", "pip"}  # conda-only entries: the interpreter, the installer


def pins(lines):
    """'name==version' lines -> {normalised name: version}; other lines ignored."""
    found = (re.fullmatch(r"\s*(?:-\s+)?([A-Za-z0-9_.-]+)==([^\s;\\]+).*", line) for line in lines)
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in found if m}


def test_requirements_environment_and_lock_pin_the_same_packages():
    requirements = pins((ROOT / "requirements.txt").read_text().splitlines())
    env_lines = (ROOT / "environment.yml").read_text().splitlines()
    assert requirements, "requirements.txt pins nothing"
    assert requirements == pins(env_lines)
    dependencies = env_lines[env_lines.index("dependencies:") + 1:]
    conda_only = {m.group(1) for line in dependencies if (m := re.fullmatch(r"  - ([A-Za-z0-9_.-]+)(=[^=].*)?", line))}
    assert conda_only <= NOT_ON_PYPI | set(requirements), f"conda-only packages not in requirements: {conda_only}"
    lock = pins((ROOT / "requirements.lock").read_text().splitlines())
    assert {name: lock.get(name) for name in requirements} == requirements, "make lock refreshes requirements.lock"


def test_every_requirement_is_pinned_and_every_locked_package_hashed():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"
    blocks = re.split(r"\n(?=\S)", (ROOT / "requirements.lock").read_text())
    packages = [b for b in blocks if "==" in b.split("\n")[0] and not b.startswith("#")]
    assert len(packages) > 50  # every transitive dependency, not only the direct ones
    assert all("--hash=sha256:" in b for b in packages)


def test_the_supported_pythons_are_the_ones_that_install():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"  # numpy 2.4 needs 3.11
    assert sys.version_info >= (3, 11)
