"""Decisions are recorded by the stage's library call, whoever makes it (an Airflow task, the
CLI, a benchmark): the validation run verdict and the drift audit's skip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from loopline.data.window import RunWindow
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.records.lineage import code_version
from loopline.spec import load_spec
from loopline.validation.gate import GateResult
from loopline.validation.verdict import judge_run

SPEC = load_spec(Path(__file__).parents[3] / "include" / "pipelines" / "card_fraud.yaml")


class MemoryStore:
    """The few ObjectStore calls records and listings make, in a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, bucket: str, key: str, body: bytes, content_type: str = "") -> None:
        self.objects[bucket, key] = body

    def get(self, bucket: str, key: str) -> bytes:
        return self.objects[bucket, key]

    def head(self, bucket: str, key: str) -> dict[str, int] | None:
        body = self.objects.get((bucket, key))
        return None if body is None else {"ContentLength": len(body)}

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))


@pytest.fixture(autouse=True)
def known_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Else the record asks git (a process, which the unit tier does not start)."""
    monkeypatch.setenv("LOOPLINE_CODE_VERSION", "test")
    code_version.cache_clear()


def run(run_id: str) -> RunContext:
    return RunContext(SPEC.name, run_id, spec_sha256="ab" * 32)


def test_the_validation_verdict_is_recorded_by_the_library_with_the_spec_version() -> None:
    store = MemoryStore()
    quarantined = GateResult("landing/a.csv", "quarantine/a.csv", False, 5, "aa", ["bad"])

    verdict = judge_run(store, SPEC.data.bucket, ["landing/a.csv"], [quarantined], True, run("v-1"))

    record = RecordStore(store, SPEC.data.bucket).read(SPEC.name, RecordStage.VALIDATION, "v-1")
    assert verdict.problems and record.verdict == "failed"
    assert record.numbers["quarantined"] == 1
    assert record.spec_sha256 == "ab" * 32


def test_a_drift_audit_with_nothing_to_compare_is_recorded_as_skipped() -> None:
    from loopline.drift.audit import EmptyWindow, run_audit

    store = MemoryStore()
    window = RunWindow(datetime(2024, 6, 30, tzinfo=UTC), SPEC.drift.window_days)

    with pytest.raises(EmptyWindow, match="no validated batch of card_fraud"):
        run_audit(store, None, SPEC, window, run("d-1"), scorer=lambda table: table)  # type: ignore[arg-type]

    [record] = RecordStore(store, SPEC.data.bucket).records(SPEC.name, RecordStage.DRIFT)
    assert record.verdict == "skipped" and record.run_id == "d-1"
    assert "no validated batch" in record.reasons[0]
