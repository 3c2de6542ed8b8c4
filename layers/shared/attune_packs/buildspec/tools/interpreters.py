"""Finding the target Python interpreter (and uv) on the build machine."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

PYENV_ROOTS = ("~/.pyenv", "/root/.pyenv", "/usr/local/pyenv", "/opt/pyenv")


def _version_of(executable: str) -> tuple[str, str] | None:
    """(implementation, X.Y.Z) of a Python executable, or None when it does not run."""
    try:
        probe = subprocess.run(
            [executable, "-c", "import platform;print(platform.python_implementation(), platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = probe.stdout.split()
    return (parts[0], parts[1]) if probe.returncode == 0 and len(parts) == 2 else None


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"versions/(\d+(?:\.\d+)*)", path)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def python_candidates(version: str) -> list[str]:
    """Where a Python ``version`` (MAJOR.MINOR) may live on a build machine, best first: on PATH,
    in a pyenv root (CodeBuild's managed images and this project's dev machines keep theirs there),
    then wherever ``uv python find`` knows of."""
    found = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    roots = [os.environ.get("PYENV_ROOT", "")] + [os.path.expanduser(r) for r in PYENV_ROOTS]
    for root in dict.fromkeys(r for r in roots if r):
        pattern = os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")
        found.extend(sorted(glob.glob(pattern), key=_version_key, reverse=True))
        found.extend(glob.glob(os.path.join(root, "versions", version, "bin", f"python{version}")))
    uv = uv_command()
    if uv:
        try:
            located = subprocess.run(
                [*uv, "python", "find", "--no-config", version], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            located = None
        if located is not None and located.returncode == 0 and located.stdout.strip():
            found.append(located.stdout.strip())
    return list(dict.fromkeys(found))


def uv_command() -> list[str] | None:
    """How to run uv here: ``$UV`` (the buildspec sets it, possibly ``python3 -m uv``), else on PATH."""
    configured = os.environ.get("UV")
    if configured is not None:
        return configured.split() or None
    found = shutil.which("uv")
    return [found] if found else None


class Interpreter:
    def __init__(self, path: str, implementation: str, version: str, requested: str) -> None:
        self.path, self.implementation, self.version, self.requested = path, implementation, version, requested

    @property
    def matches(self) -> bool:
        return self.version.split(".")[:2] == self.requested.split(".")[:2]

    def describe(self) -> str:
        text = f"{self.implementation} {self.version} ({self.path})"
        if not self.matches:
            text += f"; Python {self.requested} was requested but not found on the build machine"
        return text


def find_python(version: str, fallback: str | None = None) -> Interpreter:
    """The interpreter of ``version``; else ``fallback`` (this interpreter), marked as a mismatch."""
    for candidate in python_candidates(version):
        found = _version_of(candidate)
        if found and found[1].split(".")[:2] == version.split(".")[:2]:
            return Interpreter(candidate, found[0], found[1], version)
    path = fallback or sys.executable
    found = _version_of(path) or ("Python", "unknown")
    return Interpreter(path, found[0], found[1], version)
