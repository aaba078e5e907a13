"""Records: who a run says moved an alias. Writing and reading records on a real S3 server is
in tests/component/records/test_store.py."""

from __future__ import annotations

from loopline.records import RunContext

RUN = RunContext("fraud", "manual__2026-11-30T10:00:00+00:00", "fraud.train", "judge", 2)


def test_an_airflow_run_moves_aliases_by_its_own_name() -> None:
    assert RUN.by == "airflow:fraud.train/manual__2026-11-30T10:00:00+00:00"
    assert RunContext("fraud", "cli-1").by == "run:cli-1"
