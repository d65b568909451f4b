"""The two install routes name the same pinned packages."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_ON_PYPI = {"python", "pip", "pandoc"}  # conda-only entries: the interpreter, the installer, a binary


def pins(lines):
    """'name==version' lines -> {name: version}; other lines ignored."""
    return dict(m.groups() for line in lines if (m := re.fullmatch(r"\s*(?:-\s+)?([A-Za-z0-9_.-]+)==(\S+)\s*", line)))


def test_requirements_and_environment_pin_the_same_packages():
    requirements = pins((ROOT / "requirements.txt").read_text().splitlines())
    env_lines = (ROOT / "environment.yml").read_text().splitlines()
    environment = pins(env_lines)
    assert requirements, "requirements.txt pins nothing"
    assert requirements == environment
    dependencies = env_lines[env_lines.index("dependencies:") + 1:]
    conda_only = {m.group(1) for line in dependencies if (m := re.fullmatch(r"  - ([A-Za-z0-9_.-]+)(=[^=].*)?", line))}
    assert conda_only <= NOT_ON_PYPI | set(requirements), f"conda-only packages not in requirements: {conda_only}"


def test_every_requirement_is_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"
