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


def test_offline_without_venv_says_once_that_the_network_is_needed(tmp_path):
    """`make setup` with no .venv and PyPI out of reach (an index on a closed port): no pip retry warnings, one line
    that says the network is needed once, for .venv, and what else works."""
    import os
    import shutil
    import subprocess
    import sys

    for name in ("make.py", "tools", "support", "requirements.lock", "pyproject.toml"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_CACHE_DIR": "1"}
    for name in ("TDT4265_MAKE_INNER", "PY"):  # a make test run with PY=... must not hand it on
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "make.py", "setup"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Retrying" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "the network is needed this once" in lines[-2], lines
    assert lines[-1].startswith("error: PyPI could not be reached to install .venv") and "PY=" in lines[-1], lines


def test_the_lock_check_names_a_platform_without_a_wheel(capsys):
    """tools/wheels.py asks uv to resolve the lock for each platform from wheels alone: a platform served that lacks
    one fails the check, naming the package; one not served (Windows on ARM) is named, and passes."""
    import subprocess

    from tools import wheels

    def uv(command, **kwargs):
        platform = command[command.index("--python-platform") + 1]
        lacks = {"x86_64-apple-darwin": "demo==1.0", "aarch64-pc-windows-msvc": "pypandoc-binary==1.17"}.get(platform)
        stderr = (f"error: No solution found\n  cause: Because {lacks} has no wheels with a matching platform tag "
                  f"(e.g., `x`) and you require {lacks}, we can conclude that your requirements are unsatisfiable.")
        return subprocess.CompletedProcess(command, 1 if lacks else 0, "", stderr if lacks else "")

    assert wheels.main(run=uv) == 1
    out = capsys.readouterr().out
    assert "macOS x86_64 (Intel): no wheel for Python 3.11: demo==1.0; Python 3.12: demo==1.0" in out
    assert "Windows arm64: no wheel for Python 3.11: pypandoc-binary==1.17" in out and "(not served" in out
    assert "Linux x86_64: a wheel for every pin, Python 3.11 to 3.13" in out
