"""`loopline reproduce` with real TensorFlow on the CPU and the session's S3 server: a version
trained as the train DAG trains it (snapshot task, then train task) is retrained from its
record alone, matches within the tolerance, is linked to the original and moves no alias; a
snapshot object changed since is refused, naming it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from loopline.cli import main
from loopline.data.window import RunWindow
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion
from loopline.storage.formats import decode, encode
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.training.register import train_and_register
from loopline.training.reproduce import (
    DEFAULT_TOLERANCE,
    SnapshotObjectChanged,
    reproduce_version,
)
from loopline.training.snapshot import assemble_snapshot, save_snapshot
from support.paths import PROJECT_ROOT
from support.validated_data import DEMO, demo_bucket, land_validated

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
# The spec as it was when the version was trained: small and quick, its own seed. Reproducing
# is given the project's spec as it is now (DEMO): the recorded settings must win over it.
FAST = {"batch_size": 256, "learning_rate": 0.01}
TRAINED_WITH = DEMO.model_copy(
    update={
        "model": DEMO.model.model_copy(
            update={
                "hyperparameters": DEMO.model.hyperparameters.model_copy(update=FAST),
                "architecture": DEMO.model.architecture.model_copy(
                    update={"hidden_units": [32, 16]}
                ),
            }
        ),
        "training": DEMO.training.model_copy(
            update={"seed": 7, "early_stopping_patience": 2, "use_gpu_if_available": False}
        ),
    }
)


@pytest.fixture
def store(s3) -> ObjectStore:
    return demo_bucket(s3)


def train_as_the_dag_does(store: ObjectStore, run_id: str, epochs: int) -> ModelVersion:
    """The train DAG's snapshot and train tasks, one after the other, in run `run_id`."""
    run = RunContext(DEMO.name, run_id, dag_id="card_fraud.train", task_id="snapshot")
    window = RunWindow(NOW, DEMO.training.window_days)
    save_snapshot(store, TRAINED_WITH, assemble_snapshot(store, TRAINED_WITH, window), run)
    registry = ModelRegistry(store, DEMO.data.bucket)
    version, _ = train_and_register(registry, TRAINED_WITH, run, epochs=epochs, reason="test")
    return version


def test_a_version_is_reproduced_within_the_tolerance_linked_and_not_promoted(
    store, s3, monkeypatch, capsys
) -> None:
    for seed, days in ((3, 1), (4, 2)):
        land_validated(store, NOW - timedelta(days=days), 3000, seed=seed)
    original = train_as_the_dag_does(store, "scheduled__1", epochs=4)
    registry = ModelRegistry(store, DEMO.data.bucket)
    registry.move_alias(
        DEMO.name, CHAMPION, original.version, expected=None, action="set", reason="t", by="t"
    )
    aliases_before = {a: registry.history(DEMO.name, a) for a in (CHAMPION, CHALLENGER)}

    started = time.perf_counter()
    result = reproduce_version(store, registry, DEMO, original.version)
    with capsys.disabled():
        print(f"\nreproduced in {time.perf_counter() - started:.1f} s: {result.to_dict()}")

    assert result.within_tolerance, result.to_dict()
    assert result.tolerance == DEFAULT_TOLERANCE == 1e-6
    assert (
        {m.name for m in result.metrics} == set(original.metrics) == {"auc", "logloss", "accuracy"}
    )
    assert result.objects_verified == 2 and result.device == "CPU"
    assert result.warnings == ()  # same code, the CPU, every setting recorded
    reproduced = registry.get(DEMO.name, result.reproduced)
    assert reproduced.version == original.version + 1
    assert reproduced.lineage["reproduces"] == str(original.version)
    assert reproduced.snapshot == original.snapshot
    assert reproduced.hyperparameters == original.hyperparameters  # not DEMO's
    assert reproduced.training["seed"] == 7 and reproduced.training["architecture"][
        "hidden_units"
    ] == [32, 16]
    for name, value in original.metrics.items():
        assert abs(reproduced.metrics[name] - value) <= DEFAULT_TOLERANCE
    assert {a: registry.history(DEMO.name, a) for a in aliases_before} == aliases_before

    records = RecordStore(store, DEMO.data.bucket)
    [record] = records.records(DEMO.name, RecordStage.REPRODUCTION)
    assert record.verdict == "reproduced" and record.numbers["reproduced"] == result.reproduced
    assert [ref.sha256 for ref in record.inputs] == [
        o["sha256"] for o in original.snapshot["objects"]
    ]
    trained = records.read(DEMO.name, RecordStage.TRAINING, record.run_id)  # like any version
    assert trained.numbers["version"] == result.reproduced

    # The command, as a user runs it: champion resolves to the original.
    for name, value in s3.cli_environment().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(["--project", str(PROJECT_ROOT), "reproduce", DEMO.name, "champion"])
    out = capsys.readouterr().out
    with capsys.disabled():
        print(out)
    assert code == 0, out
    assert f"registered card_fraud version {original.version + 2} (reproduces version " in out
    assert out.rstrip().endswith("reproduced within tolerance (1e-06 per metric)")
    assert registry.alias(DEMO.name, CHAMPION) == original.version


def test_a_snapshot_object_changed_since_training_is_refused_naming_it(
    store, s3, monkeypatch, capsys
) -> None:
    key = land_validated(store, NOW - timedelta(days=1), 1500, seed=3)
    original = train_as_the_dag_does(store, "scheduled__2", epochs=1)
    recorded = original.snapshot["objects"][0]["sha256"]
    # A plausible edit: one row dropped from the validated object.
    edited = encode(decode(store.get(DEMO.data.bucket, key), "parquet").slice(1), "parquet")
    store.put(DEMO.data.bucket, key, edited, "application/octet-stream")
    registry = ModelRegistry(store, DEMO.data.bucket)

    with pytest.raises(SnapshotObjectChanged) as refused:
        reproduce_version(store, registry, DEMO, original.version)

    message = str(refused.value)
    assert f"s3://{DEMO.data.bucket}/{key} changed since it was trained" in message
    assert f"recorded sha256 {recorded}, found {sha256_hex(edited)}" in message
    assert [v.version for v in registry.versions(DEMO.name)] == [original.version]

    for name, value in s3.cli_environment().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(["--project", str(PROJECT_ROOT), "reproduce", DEMO.name, str(original.version)])
    out = capsys.readouterr().out
    with capsys.disabled():
        print(out)
    assert code == 1 and f"error: cannot reproduce card_fraud version {original.version}" in out
    assert f"recorded sha256 {recorded}, found {sha256_hex(edited)}" in out
