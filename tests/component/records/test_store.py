"""Records: one envelope, one layout, one reader, on a real S3 server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext
from loopline.records.store import RecordError
from loopline.storage.objects import ObjectStore

RUN = RunContext("fraud", "manual__2026-11-30T10:00:00+00:00", "fraud.train", "judge", 2)


@pytest.fixture
def records(s3) -> RecordStore:
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    return RecordStore(store, "loopline")


def test_a_record_is_written_under_one_layout_and_read_back(records: RecordStore) -> None:
    record = RUN.record(
        RecordStage.JUDGEMENT,
        "refuse",
        subject="v3",
        inputs=[ObjectRef(uri="s3://loopline/x.parquet", sha256="ab", rows=10)],
        reasons=["auc improvement: 0.80 vs 0.81"],
        numbers={"candidate_auc": 0.80},
        payload={"version": 3},
    )
    key = records.write(record)

    assert key == "records/fraud/judgement/manual__2026-11-30T10_00_00_00_00/v3.json"
    back = records.read("fraud", RecordStage.JUDGEMENT, RUN.run_id, subject="v3")
    assert back == record
    assert (back.dag_id, back.task_id, back.try_number) == ("fraud.train", "judge", 2)
    assert back.code_version and back.ended_at >= back.started_at
    assert back.resources["cpu_seconds"] > 0 and back.resources["peak_rss_mib"] > 0


def test_records_are_listed_by_pipeline_stage_and_run_oldest_first(records: RecordStore) -> None:
    early = RunContext("fraud", "r1", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    late = RunContext("fraud", "r2", started_at=datetime(2026, 2, 1, tzinfo=UTC))
    records.write(late.record(RecordStage.ROLLBACK, "rolled_back"))
    records.write(early.record(RecordStage.SNAPSHOT, "taken"))
    records.write(early.record(RecordStage.TRAINING, "registered"))

    assert [r.run_id for r in records.records("fraud")] == ["r1", "r1", "r2"]
    assert [r.stage for r in records.records("fraud", run_id="r1")] == ["snapshot", "training"]
    assert [r.verdict for r in records.records("fraud", RecordStage.ROLLBACK)] == ["rolled_back"]
    assert list(records.records("other")) == []


def test_a_missing_or_corrupt_record_is_an_error_naming_it(records: RecordStore) -> None:
    with pytest.raises(RecordError, match="no snapshot record for fraud run r9"):
        records.read("fraud", RecordStage.SNAPSHOT, "r9")
    key = records.key("fraud", RecordStage.SNAPSHOT, "r9")
    records.store.put("loopline", key, b'{"verdict": 1}', "application/json")
    with pytest.raises(RecordError, match=f"s3://loopline/{key} is not a stage record"):
        records.read("fraud", RecordStage.SNAPSHOT, "r9")
