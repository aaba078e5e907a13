"""Python and the installed packages against ``requirements.lock`` (what `make install` and
the image install, every version pinned)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from loopline.doctor.results import CheckResult, ok, problem, skipped

INSTALL_FIX = "make install (reinstalls .venv from requirements.lock)"
# `name==version`, optionally with extras and an environment marker; hash lines and comments
# (`    --hash=...`, `# via ...`) start with whitespace or '#' and never match.
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
    r"\s*(?:;(?P<marker>[^\\]*))?"
)
PYTHON_VERSION = re.compile(r"--python-version[ =](?P<version>\d+\.\d+)")
MAX_NAMED = 8  # a broken environment can miss hundreds: name a few, count the rest


@dataclass(frozen=True)
class LockedPackage:
    name: str  # normalised (PEP 503): lower case, runs of -_. as one -
    version: str
    marker: str = ""


@dataclass(frozen=True)
class PackageMismatch:
    name: str
    locked: str
    installed: str | None  # None: not installed


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> list[LockedPackage]:
    """The pinned packages of a uv/pip-compile lock file."""
    pins = []
    for line in text.splitlines():
        if match := PIN.match(line):
            marker = (match["marker"] or "").strip()
            pins.append(LockedPackage(normalise(match["name"]), match["version"], marker))
    return pins


def locked_python(text: str) -> str | None:
    """The Python version the lock was compiled for (its header's ``--python-version``)."""
    match = PYTHON_VERSION.search(text)
    return match["version"] if match else None


def compare(locked: Iterable[LockedPackage], installed: Mapping[str, str]) -> list[PackageMismatch]:
    """Each locked package that is missing or at another version; `installed` maps
    normalised names to versions."""
    mismatches = []
    for package in locked:
        found = installed.get(package.name)
        if found is None or not _same_version(found, package.version):
            mismatches.append(PackageMismatch(package.name, package.version, found))
    return mismatches


def _same_version(installed: str, locked: str) -> bool:
    if installed == locked:
        return True
    from packaging.version import InvalidVersion, Version

    try:  # 1.0 and 1.0.0 are one version
        return Version(installed) == Version(locked)
    except InvalidVersion:
        return False


def describe(mismatches: list[PackageMismatch], total: int) -> str:
    missing = [m for m in mismatches if m.installed is None]
    other = [m for m in mismatches if m.installed is not None]
    parts = []
    if other:
        named = ", ".join(f"{m.name} {m.installed} (locked {m.locked})" for m in other[:MAX_NAMED])
        parts.append(f"{len(other)} at another version: {named}{_more(other)}")
    if missing:
        named = ", ".join(f"{m.name}=={m.locked}" for m in missing[:MAX_NAMED])
        parts.append(f"{len(missing)} missing: {named}{_more(missing)}")
    return f"{len(mismatches)} of {total} locked packages differ; " + "; ".join(parts)


def _more(items: list[PackageMismatch]) -> str:
    return f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""


def check_python_version(lock_text: str, running: tuple[int, int]) -> CheckResult:
    wanted = locked_python(lock_text)
    here = f"{running[0]}.{running[1]}"
    if wanted is None:
        return skipped("python", f"Python {here}; the lock names no --python-version")
    if here != wanted:
        return problem(
            "python",
            f"Python {here} runs this, the lock was compiled for Python {wanted}",
            f"install Python {wanted}, then rm -rf .venv && make PYTHON=python{wanted} install",
        )
    return ok("python", f"Python {here} ({sys.executable})")


def check_packages(lock_text: str, installed: Mapping[str, str], lock_name: str) -> CheckResult:
    locked = [p for p in parse_lock(lock_text) if _applies(p.marker)]
    if not locked:
        return problem("packages", f"{lock_name} pins no package (name==version)", INSTALL_FIX)
    mismatches = compare(locked, installed)
    if mismatches:
        return problem("packages", describe(mismatches, len(locked)), INSTALL_FIX)
    return ok("packages", f"all {len(locked)} packages of {lock_name} at their locked versions")


def _applies(marker: str) -> bool:
    """Whether a pin's environment marker holds here (a pin without one always does)."""
    if not marker:
        return True
    from packaging.markers import Marker

    return Marker(marker).evaluate()


def installed_distributions() -> dict[str, str]:
    from importlib.metadata import distributions

    return {normalise(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def check_environment(lock_file: Path) -> list[CheckResult]:
    """Python's version and every package against `lock_file`."""
    try:
        text = lock_file.read_text()
    except OSError as exc:
        missing = problem(
            "packages",
            f"cannot read the lock {lock_file}: {exc.strerror}",
            "run from the project root (or give --project) where requirements.lock is",
        )
        return [skipped("python", f"no lock to compare with ({lock_file})"), missing]
    return [
        check_python_version(text, (sys.version_info.major, sys.version_info.minor)),
        check_packages(text, installed_distributions(), lock_file.name),
    ]
