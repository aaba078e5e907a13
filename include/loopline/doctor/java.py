"""Java for Spark: PySpark 4.x runs on Java 17 or 21 only."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from loopline.doctor.results import CheckResult, ok, problem

SUPPORTED_JAVA = (17, 21)
INSTALL_JAVA = (
    "install a JDK 17 or 21 (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless; macOS: "
    "brew install openjdk@17) and set JAVA_HOME to it (or put its bin/ first on PATH)"
)
# `openjdk version "17.0.15" 2025-04-15`, `java version "1.8.0_392"`, `openjdk version "21"`
VERSION_LINE = re.compile(r'version "(?P<version>[^"]+)"')


def parse_java_version(output: str) -> int | None:
    """The feature release (8, 11, 17, 21) that `java -version` printed, or None."""
    match = VERSION_LINE.search(output)
    if not match:
        return None
    parts = re.split(r"[._+-]", match["version"])
    if not parts[0].isdigit():
        return None
    major = int(parts[0])
    if major == 1 and len(parts) > 1 and parts[1].isdigit():  # "1.8.0": Java 8's old scheme
        return int(parts[1])
    return major


def find_java(environ: Mapping[str, str]) -> tuple[Path | None, str]:
    """The java Spark's launcher runs (JAVA_HOME's, else the first on PATH) and where it came
    from."""
    if java_home := environ.get("JAVA_HOME"):
        return Path(java_home) / "bin" / "java", f"JAVA_HOME={java_home}"
    found = shutil.which("java", path=environ.get("PATH"))
    return (Path(found), "PATH") if found else (None, "PATH")


def judge_java(version_output: str, java: Path, source: str) -> CheckResult:
    """Whether the `java -version` output of `java` names a release PySpark 4.x supports."""
    major = parse_java_version(version_output)
    first_line = version_output.strip().splitlines()[0] if version_output.strip() else ""
    if major is None:
        return problem(
            "java",
            f"{java} ({source}) printed no version we can read: {first_line!r}",
            INSTALL_JAVA,
        )
    if major not in SUPPORTED_JAVA:
        return problem(
            "java",
            f"Java {major} at {java} ({source}); PySpark 4.x needs Java 17 or 21",
            INSTALL_JAVA,
        )
    return ok("java", f"Java {major} at {java} ({source}): {first_line}")


def check_java(environ: Mapping[str, str], timeout: float) -> CheckResult:
    java, source = find_java(environ)
    if java is None:
        return problem("java", "no java on PATH and JAVA_HOME is not set", INSTALL_JAVA)
    if not java.is_file():
        return problem("java", f"{source}, but {java} does not exist", INSTALL_JAVA)
    try:  # `java -version` writes to stderr
        run = subprocess.run(
            [str(java), "-version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(environ),
        )
    except subprocess.TimeoutExpired:
        return problem("java", f"{java} -version did not answer in {timeout:g}s", INSTALL_JAVA)
    except OSError as exc:
        return problem("java", f"{java} ({source}) cannot run: {exc.strerror}", INSTALL_JAVA)
    if run.returncode != 0:
        detail = f"{java} -version exited {run.returncode}: {run.stderr.strip()[:200]!r}"
        return problem("java", detail, INSTALL_JAVA)
    return judge_java(run.stderr or run.stdout, java, source)
