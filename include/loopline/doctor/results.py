"""What one check of `loopline doctor` found, and how the findings are printed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    PROBLEM = "PROBLEM"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One finding: `detail` says what was found (for a skip, why); `fix` says what to do,
    and is set exactly when the status is PROBLEM."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.OK, detail)


def problem(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.PROBLEM, detail, fix)


def skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, Status.SKIPPED, reason)


def format_text(results: Sequence[CheckResult]) -> str:
    """One line per check, each PROBLEM followed by its fix, and a closing count."""
    width = max((len(result.name) for result in results), default=0)
    return "\n".join([*(format_line(result, width) for result in results), summary(results)])


def format_line(result: CheckResult, width: int) -> str:
    """`status name  detail`, and for a PROBLEM a second line with its fix."""
    line = f"{result.status.value:8} {result.name:{width}}  {result.detail}"
    if result.status is Status.PROBLEM:
        line += f"\n{'':8} {'':{width}}  fix: {result.fix}"
    return line


def summary(results: Sequence[CheckResult]) -> str:
    counts = {status: sum(r.status is status for r in results) for status in Status}
    problems = counts[Status.PROBLEM]
    head = "no problems" if not problems else f"{problems} problem{'s' * (problems != 1)}"
    return f"{head} ({counts[Status.OK]} ok, {counts[Status.SKIPPED]} skipped)"


def format_json(results: Sequence[CheckResult]) -> str:
    """The same findings for machines: {"problems": n, "checks": [{name, status, ...}]}."""
    checks = [{**asdict(result), "status": result.status.value} for result in results]
    problems = sum(result.status is Status.PROBLEM for result in results)
    return json.dumps({"problems": problems, "checks": checks}, indent=2)


def exit_code(results: Sequence[CheckResult]) -> int:
    """1 when any check found a problem, else 0 (skips are not problems)."""
    return int(any(result.status is Status.PROBLEM for result in results))
