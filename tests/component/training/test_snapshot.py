"""Training snapshots on the real S3 server: the validated rows of a window, each object
recorded, saved as a record the next task reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from loopline.data.window import RunWindow
from loopline.storage.objects import ObjectStore
from loopline.training.snapshot import EmptySnapshotError, assemble_snapshot
from support.validated_data import DEMO, demo_bucket, land_validated

SPEC = DEMO
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def store(s3) -> ObjectStore:
    return demo_bucket(s3)


def test_the_snapshot_reads_the_window_and_records_each_object(store) -> None:
    recent = [land_validated(store, NOW - timedelta(days=d), 1500, seed=d) for d in (1, 2)]
    land_validated(store, NOW - timedelta(days=60), 1500, seed=60)  # outside the window
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, 30))
    record = snapshot.record
    assert sorted(o["key"] for o in record.objects) == sorted(recent)
    assert record.rows == 3000 == record.train_rows + record.holdout_rows
    assert 0.15 < record.holdout_rows / record.rows < 0.25  # holdout_fraction 0.2
    assert all(len(o["sha256"]) == 64 for o in record.objects)
    with pytest.raises(EmptySnapshotError, match="no validated rows for card_fraud"):
        assemble_snapshot(store, SPEC, RunWindow(NOW - timedelta(days=200), 5))


def test_a_saved_snapshot_is_a_record_the_next_task_reads_back(store) -> None:
    from loopline.records import RecordStage, RecordStore, RunContext
    from loopline.training.snapshot import load_saved_snapshot, save_snapshot

    land_validated(store, NOW - timedelta(days=1), 1000, seed=4)
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, SPEC.training.window_days))
    run = RunContext(SPEC.name, "manual__1", "card_fraud.train", "snapshot", 1)
    saved = save_snapshot(store, SPEC, snapshot, run)

    again = load_saved_snapshot(store, SPEC, "manual__1")
    assert again.record == snapshot.record and again.holdout.equals(snapshot.holdout)
    record = RecordStore(store, SPEC.data.bucket).read(SPEC.name, RecordStage.SNAPSHOT, "manual__1")
    assert record == saved and record.numbers["rows"] == 1000
    assert [o.rows for o in record.inputs] == [1000]
    assert [o.uri.rsplit("/", 1)[-1] for o in record.outputs] == [
        "train.parquet",
        "holdout.parquet",
    ]
