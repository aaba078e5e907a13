"""Expectation suites kept as JSON files in the repo, reviewed like code."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

log = logging.getLogger(__name__)


class SuiteError(ValueError):
    """A suite file that cannot be used, naming the file, the entry and the reason."""


def load_suite(path: Path | str) -> ExpectationSuite:
    """A ``great_expectations.ExpectationSuite`` from a JSON file, every entry checked.

    Great Expectations drops an entry of unknown type with only a log line; here that is an
    error naming the entry, so a typo never silently weakens the gate.
    """
    path = Path(path)
    return suite_from_document(_read(path), path)


def suite_from_document(document: dict[str, Any], path: Path) -> ExpectationSuite:
    """`load_suite` for a suite not yet written (to `path`, which names it and its errors)."""
    from loopline.validation.gx import great_expectations

    gx = great_expectations()
    entries = document.get("expectations")
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{path}: 'expectations' must be a non-empty list")
    problems = []
    for index, entry in enumerate(entries):
        problem = _entry_problem(gx, entry)
        if problem:
            problems.append(f"  expectations[{index}] ({_entry_type(entry)}): {problem}")
    if problems:
        raise SuiteError(f"{len(problems)} problem(s) in {path}\n" + "\n".join(problems))
    return gx.ExpectationSuite(
        name=document.get("name") or path.stem,
        expectations=entries,
        meta=document.get("meta") or {},
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SuiteError(f"expectation suite {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise SuiteError(f"{path}: expected an object with 'name' and 'expectations'")
    return document


def _entry_problem(gx: Any, entry: Any) -> str | None:
    if not isinstance(entry, dict) or "type" not in entry:
        return "expected an object with 'type' and 'kwargs'"
    try:
        probe = gx.ExpectationSuite(name="probe", expectations=[entry])
    except Exception as exc:
        return " ".join(str(exc).split())
    if len(probe.expectations) != 1:
        return f"unknown expectation type {entry['type']!r}"
    return None


def _entry_type(entry: Any) -> str:
    return entry.get("type", "?") if isinstance(entry, dict) else "?"
