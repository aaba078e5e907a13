"""A drift audit's record says how much the drifted features matter to the champion, from the
importance stored with it (no SHAP on the audit's path), or that it was never computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from loopline.data.profile_store import ProfileStore
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import DriftKnobs, generate
from loopline.drift.audit import run_audit
from loopline.records import RunContext
from loopline.registry import CHAMPION, ModelRegistry
from loopline.registry.importance import NOT_COMPUTED, FeatureImportance
from loopline.registry.layout import snapshot_table_key
from loopline.storage.formats import encode
from support.validated_data import DEMO, demo_bucket

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
# The champion relies on v1 (which drifts below) and on amount (which does not).
RELIES_ON = {name: 0.01 for name in DEMO.model.features.all} | {"v1": 0.5, "amount": 0.3}


def scores(version: int, table: pa.Table) -> np.ndarray:
    """The champion's scores, stood in for: the label, blurred."""
    return 0.8 * table.column(DEMO.model.label).to_numpy().astype(float) + 0.1


def champion(s3, folder: Path, importance: FeatureImportance | None) -> ModelRegistry:
    store = demo_bucket(s3)
    for name, rows, seed in (("train", 5000, 1), ("holdout", 2000, 2)):
        table = generate(rows, seed=seed, start=TODAY - timedelta(days=10), batch_id=name)
        store.put(
            DEMO.data.bucket,
            snapshot_table_key(DEMO.name, "run-1", name),
            encode(table, "parquet"),
            "x",
        )
    (folder / "model.keras").write_bytes(b"not a model: the scorer stands in")
    registry = ModelRegistry(store, DEMO.data.bucket)
    version = registry.register(
        DEMO.name,
        folder,
        metrics={"auc": 0.99},
        input_schema=[],
        lineage={"run_id": "run-1"},
        importance=importance,
    ).version
    registry.move_alias(
        DEMO.name, CHAMPION, version, expected=None, action="set", reason="t", by="t"
    )
    return registry


def audit_drifted_window(registry: ModelRegistry):
    key = f"{DEMO.data.validated_prefix}dt={TODAY:%Y-%m-%d}/drifted.parquet"
    table = generate(
        5000, seed=3, drift=DriftKnobs(mean_shift=1.0, drifted_features=2), start=TODAY
    )
    profiles = ProfileStore(registry.store, DEMO.data)
    profiles.write(key, profiles.profile(table, key))
    registry.store.put_new(DEMO.data.bucket, key, encode(table, "parquet"))
    run = RunContext(DEMO.name, "audit-1", dag_id=f"{DEMO.name}.drift_audit")
    window = RunWindow(NOW, DEMO.drift.window_days)
    return run_audit(registry.store, registry, DEMO, window, run, scorer=scores)


def test_the_audit_record_weighs_the_drifted_features_by_the_champions_importance(
    s3, tmp_path
) -> None:
    stored = FeatureImportance(
        values=RELIES_ON, method="shap.Permutation", library="shap 0.51.0", rows=64,
        background_rows=32, seed=0, max_additivity_gap=0.0, seconds=1.0,
    )  # fmt: skip
    outcome = audit_drifted_window(champion(s3, tmp_path, stored))

    assert outcome.verdict.drifted_features[:2] == ["v1", "v2"]
    relied_on = outcome.record.payload["drifted_importance"]
    shares = stored.shares()
    assert relied_on["computed"] and relied_on["version"] == 1
    ranks = {name: rank for rank, (name, _) in enumerate(stored.ranked(), start=1)}
    assert [(f["feature"], f["rank"]) for f in relied_on["features"]][:2] == [
        ("v1", 1),
        ("v2", ranks["v2"]),
    ]
    drifted = outcome.verdict.drifted_features
    assert relied_on["total_share"] == pytest.approx(sum(shares[n] for n in drifted), abs=1e-3)
    assert any(r.startswith("the drifted features carry") for r in outcome.record.reasons)


def test_a_champion_without_importance_is_said_not_computed(s3, tmp_path) -> None:
    outcome = audit_drifted_window(champion(s3, tmp_path, None))

    relied_on = outcome.record.payload["drifted_importance"]
    assert relied_on["computed"] is False
    assert relied_on["reason"] == f"champion v1's importance is {NOT_COMPUTED}"
