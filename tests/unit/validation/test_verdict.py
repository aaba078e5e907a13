"""A validation run's verdict, from its files' outcomes, without Airflow."""

from __future__ import annotations

from loopline.records import RunContext
from loopline.validation.gate import GateResult
from loopline.validation.verdict import run_verdict

LANDED = ["landing/a.parquet", "landing/b.csv", "landing/c.parquet", "landing/d.parquet"]
PASSED = GateResult(
    "landing/a.parquet", "validated/a.parquet", True, 10, "aa", [], accepted_rows=10
)
SPLIT = GateResult(
    "landing/b.csv", "validated/b.csv", True, 10, "bb", ["amount: 2 rows out of range"],
    accepted_rows=8, rejected_rows=2, quarantine_key="quarantine/b.csv",
)  # fmt: skip
QUARANTINED = GateResult(
    "landing/c.parquet", "quarantine/c.parquet", False, 5, "cc", ["no column 'channel'"],
    accepted_rows=0, rejected_rows=5,
)  # fmt: skip


def test_a_quarantined_file_and_an_unchecked_one_fail_the_run_by_name() -> None:
    verdict = run_verdict(LANDED, [PASSED, SPLIT, QUARANTINED], fail_on_invalid=True)

    assert verdict.counts == {
        "files": 4, "passed": 1, "split": 1, "quarantined": 1, "unchecked": 1, "rows_rejected": 7
    }  # fmt: skip
    assert verdict.problems == [
        "  landing/c.parquet -> quarantine/c.parquet: no column 'channel'",
        "  landing/d.parquet: not validated (its task failed); it stays in landing",
    ]
    assert verdict.failure_message().startswith("2 of 4 file(s) did not pass:\n")


def test_quarantine_only_keeps_the_run_green_but_an_unchecked_file_never_does() -> None:
    verdict = run_verdict(LANDED[:3], [PASSED, SPLIT, QUARANTINED], fail_on_invalid=False)
    assert verdict.problems == []
    verdict = run_verdict(LANDED, [PASSED, SPLIT, QUARANTINED], fail_on_invalid=False)
    assert [p.split(":")[0].strip() for p in verdict.problems] == ["landing/d.parquet"]


def test_the_verdict_is_a_record_of_the_run() -> None:
    verdict = run_verdict(LANDED[:3], [PASSED, SPLIT, QUARANTINED], fail_on_invalid=True)
    record = verdict.record(RunContext("fraud", "r1", "fraud.validate"), "loopline")
    assert (record.stage, record.verdict, record.subject) == ("validation", "failed", "run")
    assert record.numbers["quarantined"] == 1 and record.numbers["rows_rejected"] == 7
    assert [o.sha256 for o in record.inputs] == ["aa", "bb", "cc"]
    assert record.payload["results"][1]["quarantine_key"] == "quarantine/b.csv"
