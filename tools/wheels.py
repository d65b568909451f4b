"""Whether requirements.lock installs from wheels alone on each platform the README names: for every pin, a wheel
on PyPI whose tags the platform accepts and whose SHA-256 the lock lists (what `pip install --only-binary=:all:
--require-hashes` needs, checked from PyPI's index without downloading the wheels).

    python -m tools.wheels          # exit 1 if a supported platform lacks a wheel; lists what is not served
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from packaging.markers import Marker
from packaging.tags import compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

from tools.common import ROOT

INDEX = "https://pypi.org/simple"
PYTHONS = ((3, 11), (3, 12), (3, 13))


def _manylinux(arch: str) -> list[str]:
    """Linux platform tags a glibc 2.28 machine of `arch` accepts, newest first (manylinux2014 is glibc 2.17)."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)]
    return tags + [f"manylinux2014_{arch}", f"linux_{arch}"] + (
        [f"manylinux2010_{arch}", f"manylinux1_{arch}"] if arch == "x86_64" else [])


PLATFORMS = {  # name -> (the platform tags it accepts, its environment markers, whether the README names it served)
    "Linux x86_64": (_manylinux("x86_64"), {"sys_platform": "linux", "os_name": "posix",
                                            "platform_system": "Linux", "platform_machine": "x86_64"}, True),
    "Linux aarch64": (_manylinux("aarch64"), {"sys_platform": "linux", "os_name": "posix",
                                              "platform_system": "Linux", "platform_machine": "aarch64"}, True),
    "macOS arm64 (Apple silicon)": (list(mac_platforms((14, 0), "arm64")), {
        "sys_platform": "darwin", "os_name": "posix", "platform_system": "Darwin", "platform_machine": "arm64"}, True),
    "macOS x86_64 (Intel)": (list(mac_platforms((12, 0), "x86_64")), {
        "sys_platform": "darwin", "os_name": "posix", "platform_system": "Darwin", "platform_machine": "x86_64"}, True),
    "Windows x64": (["win_amd64"], {"sys_platform": "win32", "os_name": "nt", "platform_system": "Windows",
                                    "platform_machine": "AMD64"}, True),
    "Windows arm64": (["win_arm64"], {"sys_platform": "win32", "os_name": "nt", "platform_system": "Windows",
                                      "platform_machine": "ARM64"}, False),
}


def locked(lock_text: str) -> list[tuple[str, str, Marker | None, set[str]]]:
    """(name, version, marker, hashes) of each pin of requirements.lock (a universal lock pins some names twice,
    under markers)."""
    pins = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock_text):
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;([^\\\n]*))?", block)
        if match:
            marker = Marker(match[3].strip()) if match[3] and match[3].strip() else None
            pins.append((canonicalize_name(match[1]), match[2], marker,
                         set(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))))
    return pins


def files_on_pypi(name: str) -> list[dict]:
    request = urllib.request.Request(f"{INDEX}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["files"]


def missing_wheels(pins: list, index: dict[str, list[dict]]) -> dict[str, list[str]]:
    """{platform: ["name==version (Python 3.x)", ...]} of the pins that a platform installs (by their markers) and
    that have no wheel it accepts with a hash the lock lists."""
    out: dict[str, list[str]] = {}
    for platform, (platform_tags, environment, _) in PLATFORMS.items():
        for python in PYTHONS:
            interpreter = f"cp{python[0]}{python[1]}"
            accepted = {*cpython_tags(python, platforms=platform_tags),
                        *compatible_tags(python, interpreter, platform_tags)}
            env = {**environment, "python_version": f"{python[0]}.{python[1]}", "implementation_name": "cpython",
                   "python_full_version": f"{python[0]}.{python[1]}.9", "platform_python_implementation": "CPython"}
            for name, version, marker, hashes in pins:
                if marker is not None and not marker.evaluate(env):
                    continue
                ok = False
                for file in index[name]:
                    if not file["filename"].endswith(".whl") or file["hashes"].get("sha256") not in hashes:
                        continue
                    _, wheel_version, _, tags = parse_wheel_filename(file["filename"])
                    if str(wheel_version) == version and tags & accepted:
                        ok = True
                        break
                if not ok:
                    out.setdefault(platform, []).append(f"{name}=={version} (Python {python[0]}.{python[1]})")
    return out


def main() -> int:
    pins = locked((ROOT / "requirements.lock").read_text())
    names = sorted({name for name, *_ in pins})
    with ThreadPoolExecutor(16) as pool:
        index = dict(zip(names, pool.map(files_on_pypi, names)))
    missing = missing_wheels(pins, index)
    status = 0
    for platform, (_, _, served) in PLATFORMS.items():
        gaps = missing.get(platform, [])
        if not gaps:
            print(f"{platform}: a wheel for every pin, Python 3.11 to 3.13")
            continue
        print(f"{platform}: no wheel for {', '.join(gaps)}" + ("" if served else " (not served: the README says so)"))
        status |= served
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
