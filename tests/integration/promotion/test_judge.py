"""Champion/challenger with real TensorFlow models in a registry on a real S3 server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import generate
from loopline.promotion.judge import apply_judgement, judge, roll_back_champion
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHALLENGER, CHAMPION, CorruptModelError, ModelRegistry
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from loopline.training.register import register_candidate
from loopline.training.snapshot import Snapshot, assemble_snapshot
from loopline.training.trainer import train_model
from support.paths import PIPELINES

BASE = load_spec(PIPELINES / "card_fraud.yaml")
FAST = {"batch_size": 256, "learning_rate": 0.01}
SPEC = BASE.model_copy(
    update={
        "model": BASE.model.model_copy(
            update={"hyperparameters": BASE.model.hyperparameters.model_copy(update=FAST)}
        ),
        # Low enough for the deliberately bad first model, so there is a champion to beat.
        "promotion": type(BASE.promotion).model_validate(
            {
                **BASE.promotion.model_dump(),
                "absolute_thresholds": {"auc": 0.3},
                "max_p99_latency_ms": 1000,
            }
        ),
    }
)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def RUN(run_id: str) -> RunContext:
    return RunContext(SPEC.name, run_id, dag_id="card_fraud.train")


@pytest.fixture
def world(s3):
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    table = generate(6000, seed=5, start=NOW - timedelta(days=1))
    key = f"{SPEC.data.validated_prefix}dt=2026-11-22/b.parquet"
    store.put_new(SPEC.data.bucket, key, encode(table, "parquet"))
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, SPEC.training.window_days))
    return ModelRegistry(store, SPEC.data.bucket), snapshot


def with_shuffled_labels(snapshot: Snapshot) -> Snapshot:
    """The same rows with their labels shuffled: a model that learns nothing."""
    train = snapshot.train
    labels = np.random.default_rng(0).permutation(train.column("is_fraud").to_numpy())
    index = train.column_names.index("is_fraud")
    shuffled = train.set_column(index, "is_fraud", pa.array(labels))
    return Snapshot(shuffled, snapshot.holdout, snapshot.record)


def candidate(registry, snapshot, run: str, *, bad: bool = False):
    trained_on = with_shuffled_labels(snapshot) if bad else snapshot
    outcome = train_model(trained_on.train, SPEC.model, SPEC.training, epochs=5)
    return register_candidate(registry, SPEC, outcome, snapshot, {"run_id": run})


def test_better_is_promoted_worse_is_not_and_rollback_restores(world) -> None:
    registry, snapshot = world
    weak = candidate(registry, snapshot, "r1", bad=True)
    first = judge(registry, SPEC, weak.version, snapshot.holdout)
    assert first.decision.promote and first.champion is None
    apply_judgement(registry, SPEC, first, RUN("r1"))

    good = candidate(registry, snapshot, "r2")
    assert good.parent_champion == weak.version
    assert good.snapshot["objects"][0]["key"].endswith("b.parquet")
    better = judge(registry, SPEC, good.version, snapshot.holdout)
    assert better.decision.promote, better.decision.summary()
    apply_judgement(registry, SPEC, better, RUN("r2"))
    assert registry.alias(SPEC.name, CHAMPION) == good.version

    worse = candidate(registry, snapshot, "r3", bad=True)
    refused = judge(registry, SPEC, worse.version, snapshot.holdout, RUN("r3"))
    assert not refused.decision.promote
    assert "auc improvement" in [r.split(":")[0] for r in refused.decision.reasons]
    apply_judgement(registry, SPEC, refused, RUN("r3"))
    assert registry.alias(SPEC.name, CHAMPION) == good.version
    assert registry.alias(SPEC.name, CHALLENGER) == worse.version
    [challenger_move] = registry.history(SPEC.name, CHALLENGER)
    assert "auc improvement" in challenger_move.reason
    records = RecordStore(registry.store, SPEC.data.bucket)
    judged = records.read(SPEC.name, RecordStage.JUDGEMENT, "r3", subject=f"v{worse.version}")
    assert judged.verdict == "refuse" and judged.payload["decision"]["promote"] is False
    assert any(reason.startswith("auc improvement") for reason in judged.reasons)
    promotion = records.read(SPEC.name, RecordStage.PROMOTION, "r3")
    assert promotion.verdict == "challenger" and promotion.numbers["version"] == worse.version

    # A retry of the same run returns the move it made: the alias moves once.
    apply_judgement(registry, SPEC, refused, RUN("r3"))
    assert len(registry.history(SPEC.name, CHALLENGER)) == 1

    roll_back_champion(registry, SPEC, "test", RUN("rollback-1"))
    roll_back_champion(registry, SPEC, "test", RUN("rollback-1"))  # a retry: no second step
    assert registry.alias(SPEC.name, CHAMPION) == weak.version
    rollback = records.read(SPEC.name, RecordStage.ROLLBACK, "rollback-1")
    assert (rollback.verdict, rollback.numbers["version"]) == ("rolled_back", weak.version)


def test_a_corrupt_model_is_rejected_before_promotion(world) -> None:
    registry, snapshot = world
    version = candidate(registry, snapshot, "r1")
    key = f"models/card_fraud/versions/{version.version:06d}/model.keras"
    registry.store.put(SPEC.data.bucket, key, b"not a model", "application/octet-stream")
    with pytest.raises(CorruptModelError, match=r"model\.keras is corrupt"):
        judge(registry, SPEC, version.version, snapshot.holdout)
    assert registry.alias(SPEC.name, CHAMPION) is None
