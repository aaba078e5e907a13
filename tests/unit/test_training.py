"""Training with real TensorFlow on CPU: snapshots from S3, a self-contained model, seeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import PIPELINES
from loopline.demo.card_transactions import generate
from loopline.serving.evaluate import evaluate, score
from loopline.serving.model import load_model, save_artifacts
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from loopline.training.snapshot import EmptySnapshotError, assemble_snapshot, holdout_mask
from loopline.training.trainer import train_model

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
# A few thousand rows learn in a few epochs with a larger step.
FAST = {"batch_size": 256, "learning_rate": 0.01}
SMALL = SPEC.model.model_copy(
    update={"hyperparameters": SPEC.model.hyperparameters.model_copy(update=FAST)}
)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def land_validated(store: ObjectStore, day: datetime, rows: int, seed: int) -> str:
    key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/batch-{seed}.parquet"
    table = generate(rows, seed=seed, start=day, batch_id=f"b{seed}")
    store.put_new(SPEC.data.bucket, key, encode(table, "parquet"))
    return key


@pytest.fixture
def store(s3) -> ObjectStore:
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    return store


def test_the_snapshot_reads_the_window_and_records_each_object(store) -> None:
    recent = [land_validated(store, NOW - timedelta(days=d), 1500, seed=d) for d in (1, 2)]
    land_validated(store, NOW - timedelta(days=60), 1500, seed=60)  # outside the window
    snapshot = assemble_snapshot(store, SPEC, NOW, window_days=30)
    record = snapshot.record
    assert sorted(o["key"] for o in record.objects) == sorted(recent)
    assert record.rows == 3000 == record.train_rows + record.holdout_rows
    assert 0.15 < record.holdout_rows / record.rows < 0.25  # holdout_fraction 0.2
    assert all(len(o["sha256"]) == 64 for o in record.objects)
    with pytest.raises(EmptySnapshotError, match="no validated rows for card_fraud"):
        assemble_snapshot(store, SPEC, NOW - timedelta(days=200), window_days=5)


def test_the_holdout_is_chosen_by_key_so_it_is_stable() -> None:
    keys = generate(2000, seed=1).column("transaction_id")
    first, again = holdout_mask(keys, 0.2), holdout_mask(keys.slice(500), 0.2)
    assert np.array_equal(first[500:], again)


def test_training_is_reproducible_and_the_saved_model_needs_no_preprocessing_code(
    store, tmp_path
) -> None:
    land_validated(store, NOW - timedelta(days=1), 6000, seed=3)
    snapshot = assemble_snapshot(store, SPEC, NOW)
    first = train_model(snapshot.train, SMALL, SPEC.training, epochs=5)
    second = train_model(snapshot.train, SMALL, SPEC.training, epochs=5)
    scores = score(first.model, snapshot.holdout, SMALL)
    assert np.array_equal(scores, score(second.model, snapshot.holdout, SMALL))
    assert first.device == "CPU" and first.samples_per_second > 0

    save_artifacts(first.model, tmp_path / "model")
    reloaded = load_model(tmp_path / "model")
    assert np.allclose(score(reloaded, snapshot.holdout, SMALL), scores, atol=1e-6)
    assert (tmp_path / "model" / "saved_model" / "saved_model.pb").exists()

    evaluation = evaluate(first.model, snapshot.holdout, SMALL, SPEC.training.metrics)
    assert evaluation.metrics["auc"] > 0.75  # the label depends on the features
    assert 0 < evaluation.p99_latency_ms < 1000
