"""Reproducing a version, the pure parts: the tolerance verdict, the recorded settings read
back, the refusals naming a missing or changed object, and the split rebuilt from the recorded
objects alone. Training and registering for real is in tests/integration/training."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from loopline.commands.reproduce import describe
from loopline.data.validated import ObjectRead
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import generate
from loopline.registry import ModelVersion
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import sha256_hex
from loopline.training.reproduce import (
    MetricDifference,
    Reproduction,
    ReproductionRefused,
    SnapshotObjectChanged,
    SnapshotObjectMissing,
    compare_metrics,
    read_recorded_objects,
    rebuild_snapshot,
    recipe_of,
)
from loopline.training.snapshot import assemble_snapshot
from support.paths import PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
BUCKET = SPEC.data.bucket
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


class DictStore:
    """The few calls reading validated objects makes, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get(self, bucket: str, key: str) -> bytes:
        return self.objects[key]

    def get_if_exists(self, bucket: str, key: str) -> bytes | None:
        return self.objects.get(key)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


def result(original: dict[str, float], reproduced: dict[str, float], tolerance: float = 1e-6):
    return Reproduction(
        pipeline="card_fraud",
        original=3,
        reproduced=4,
        tolerance=tolerance,
        metrics=compare_metrics(original, reproduced),
        objects_verified=2,
        device="CPU",
        seconds=1.5,
    )


# -- the comparison and its tolerance ------------------------------------------------------


def test_identical_metrics_reproduce() -> None:
    same = result({"auc": 0.91, "logloss": 0.2}, {"auc": 0.91, "logloss": 0.2})
    assert same.within_tolerance and same.verdict == "reproduced"
    assert [m.difference for m in same.metrics] == [0.0, 0.0]


def test_a_difference_at_the_tolerance_passes_and_beyond_it_fails() -> None:
    at = MetricDifference("auc", 0.5, 0.5 + 2**-21)  # exactly representable, < 1e-6
    assert at.within(2**-21) and not at.within(2**-22)
    beyond = result({"auc": 0.91, "logloss": 0.2}, {"auc": 0.91 + 2e-6, "logloss": 0.2})
    assert not beyond.within_tolerance and beyond.verdict == "differs"
    assert result({"auc": 0.91}, {"auc": 0.91 + 2e-6}, tolerance=1e-5).within_tolerance


def test_a_metric_the_reproduction_did_not_measure_is_a_difference() -> None:
    missing = result({"auc": 0.91, "accuracy": 0.95}, {"auc": 0.91})
    assert not missing.within_tolerance
    assert math.isnan(dict((m.name, m.reproduced) for m in missing.metrics)["accuracy"])
    assert "missing" in describe(missing)
    assert json.loads(json.dumps(missing.to_dict()))["verdict"] == "differs"


def test_no_metric_at_all_is_not_a_reproduction() -> None:
    assert not result({}, {"auc": 0.9}).within_tolerance


def test_the_report_shows_each_metric_and_the_verdict() -> None:
    text = describe(result({"auc": 0.91, "logloss": 0.2}, {"auc": 0.91, "logloss": 0.2 + 3e-6}))
    assert "registered card_fraud version 4 (reproduces version 3; no alias moved)" in text
    assert "logloss" in text and "+3.00e-06" in text
    assert text.splitlines()[-1] == "DIFFERS beyond the tolerance (1e-06 per metric)"


# -- the recorded objects, checked ----------------------------------------------------------


def recorded(store: DictStore, key: str, body: bytes) -> ObjectRead:
    store.objects[key] = body
    return ObjectRead(key, sha256_hex(body), rows=1)


def test_the_recorded_objects_are_read_in_their_order() -> None:
    store = DictStore()
    objects = (recorded(store, "v/b", b"second"), recorded(store, "v/a", b"first"))
    assert read_recorded_objects(store, BUCKET, objects, what="v3") == [b"second", b"first"]


def test_a_changed_object_is_refused_naming_it_and_both_checksums() -> None:
    store = DictStore()
    objects = (recorded(store, "v/a", b"first"), recorded(store, "v/b", b"second"))
    store.objects["v/b"] = b"second, edited"
    with pytest.raises(SnapshotObjectChanged) as refused:
        read_recorded_objects(store, BUCKET, objects, what="card_fraud version 3")
    message = str(refused.value)
    assert f"s3://{BUCKET}/v/b changed" in message
    assert f"recorded sha256 {sha256_hex(b'second')}" in message
    assert f"found {sha256_hex(b'second, edited')}" in message
    assert message.startswith("cannot reproduce card_fraud version 3")


def test_a_missing_object_is_refused_naming_it() -> None:
    store = DictStore()
    objects = (recorded(store, "v/a", b"first"),)
    del store.objects["v/a"]
    with pytest.raises(SnapshotObjectMissing) as refused:
        read_recorded_objects(store, BUCKET, objects, what="card_fraud version 3")
    assert (
        f"s3://{BUCKET}/v/a is missing (recorded sha256 {sha256_hex(b'first')}, found no "
        "object)" in str(refused.value)
    )


# -- the recorded settings ------------------------------------------------------------------


def version(**changes) -> ModelVersion:
    fields = {
        "name": SPEC.name,
        "version": 3,
        "created_at": NOW,
        "metrics": {"auc": 0.9, "logloss": 0.2},
        "input_schema": [{"name": name, "type": "x"} for name in SPEC.model.features.all],
        "hyperparameters": {"learning_rate": 0.01, "batch_size": 256, "epochs": 20},
        "snapshot": {
            "window_start": (NOW - timedelta(days=30)).isoformat(),
            "window_end": NOW.isoformat(),
            "objects": [{"key": "v/a", "sha256": "ab" * 32, "rows": 10}],
            "rows": 10,
            "train_rows": 8,
            "holdout_rows": 2,
            "holdout_fraction": 0.25,
        },
        "code_version": "unit-tier",
        "lineage": {"run_id": "manual__1"},
        "artifacts": {"model.keras": "cd" * 32},
        "size_bytes": 1,
        "training": {
            "device": "CPU",
            "epochs_run": 4,
            "max_epochs": 5,
            "seed": 7,
            "early_stopping_patience": 2,
            "architecture": {
                "kind": "mlp",
                "hidden_units": [8],
                "dropout": 0.0,
                "embedding_dim": 2,
            },
        },
    }
    return ModelVersion(**{**fields, **changes})


def test_the_recipe_takes_the_recorded_settings_over_the_spec() -> None:
    recipe = recipe_of(version(), SPEC)
    model, training = recipe.spec.model, recipe.spec.training
    assert model.hyperparameters.learning_rate == 0.01 and model.hyperparameters.batch_size == 256
    assert model.architecture.hidden_units == [8] and model.architecture.embedding_dim == 2
    assert (training.seed, training.early_stopping_patience, recipe.max_epochs) == (7, 2, 5)
    assert training.holdout_fraction == 0.25
    assert [m.value for m in training.metrics] == ["auc", "logloss"]
    assert training.use_gpu_if_available is False  # a CPU version is reproduced on the CPU
    assert recipe.objects == (ObjectRead("v/a", "ab" * 32, 10),)
    assert recipe.warnings == ()


def test_a_code_version_or_gpu_difference_is_a_warning_not_a_refusal() -> None:
    trained = version(code_version="0123abc", training={**version().training, "device": "GPU:0"})
    warnings = " | ".join(recipe_of(trained, SPEC).warnings)
    assert "trained by code version 0123abc, this is unit-tier" in warnings
    assert "GPU:0" in warnings and recipe_of(trained, SPEC).spec.training.use_gpu_if_available


def test_what_an_older_version_did_not_record_comes_from_the_spec_with_a_warning() -> None:
    older = version(training={"device": "CPU", "epochs_run": 4})
    recipe = recipe_of(older, SPEC)
    assert recipe.spec.training.seed == SPEC.training.seed and recipe.max_epochs == 4
    assert recipe.spec.model.architecture == SPEC.model.architecture
    assert any("did not record its seed" in warning for warning in recipe.warnings)


def test_a_version_whose_features_the_spec_no_longer_names_is_refused() -> None:
    other = version(input_schema=[{"name": "v1", "type": "float"}])
    with pytest.raises(ReproductionRefused, match=r"takes the features \['v1'\]"):
        recipe_of(other, SPEC)


# -- the split, rebuilt from the recorded objects alone ------------------------------------


def land(store: DictStore, day: datetime, seed: int) -> None:
    key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/batch-{seed}.parquet"
    table = generate(300, seed=seed, start=day, batch_id=f"b{seed}")
    store.objects[key] = encode(table, "parquet")


def recorded_version(store: DictStore) -> tuple[ModelVersion, object]:
    for seed, days in ((3, 1), (4, 2), (5, 40)):  # the last is outside the window
        land(store, NOW - timedelta(days=days), seed)
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, SPEC.training.window_days))
    return version(snapshot=snapshot.record.to_dict()), snapshot


def test_the_recorded_objects_give_back_the_same_train_and_holdout_rows() -> None:
    store = DictStore()
    trained, snapshot = recorded_version(store)
    land(store, NOW - timedelta(days=3), 6)  # landed later, in the window: not read again
    recipe = recipe_of(trained, SPEC)
    bodies = read_recorded_objects(store, BUCKET, recipe.objects, what="v3")
    rebuilt = rebuild_snapshot(bodies, recipe)
    assert len(bodies) == 2
    assert rebuilt.train.equals(snapshot.train) and rebuilt.holdout.equals(snapshot.holdout)


def test_a_split_that_comes_out_otherwise_is_refused_with_the_counts() -> None:
    store = DictStore()
    trained, _ = recorded_version(store)
    wrong = version(
        snapshot={**trained.snapshot, "holdout_rows": trained.snapshot["holdout_rows"] + 1}
    )
    recipe = recipe_of(wrong, SPEC)
    bodies = read_recorded_objects(store, BUCKET, recipe.objects, what="v3")
    with pytest.raises(ReproductionRefused, match=r"holdout rows: recorded \d+, found \d+"):
        rebuild_snapshot(bodies, recipe)
