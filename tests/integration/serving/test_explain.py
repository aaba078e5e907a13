"""Explanations with a real Keras model trained and registered through Loopline, on the real S3
server: the version carries its importance (stored, shown by `models show`), and `loopline
explain` explains a real batch prediction with the version that made it, adding up to the
score batch scoring stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from loopline.batch.commit import commit_output
from loopline.batch.scoring import score_object
from loopline.cli import main
from loopline.data.window import RunWindow
from loopline.registry import ModelRegistry, ModelVersion
from loopline.serving.explain import ADDITIVITY_TOLERANCE, IMPORTANCE_ROWS
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.training.register import register_candidate
from loopline.training.snapshot import assemble_snapshot
from loopline.training.trainer import train_model
from support.batch_world import scoring_job
from support.paths import PROJECT_ROOT
from support.validated_data import DEMO, demo_bucket, land_validated

ON_CPU = DEMO.training.model_copy(update={"use_gpu_if_available": False})
FAST = DEMO.model.model_copy(
    update={
        "hyperparameters": DEMO.model.hyperparameters.model_copy(
            update={"batch_size": 256, "learning_rate": 0.01}
        )
    }
)


def scored_batch(s3, store, version: int, key: str) -> None:
    """Batch scoring's own code on one validated object (no Spark: it only distributes the
    objects), committed as the batch_score DAG commits it."""
    run_id = "manual__explain"
    job = scoring_job(s3, version, run_id)
    manifest = score_object(job, key, S3Settings.from_json(job.s3_json).filesystem())
    assert DEMO.batch_inference is not None
    commit_output(
        store,
        DEMO.data.bucket,
        DEMO.batch_inference.output_prefix,
        manifest,
        run_id=run_id,
        model_version=version,
        staging_prefix=job.staging_prefix,
    )


def trained(s3, monkeypatch, rows: int) -> tuple[ObjectStore, ModelRegistry, ModelVersion, str]:
    """A small model trained on `rows` validated rows of yesterday and registered, as the
    train task does; the commands pointed at the S3 server. Returns the object's key too."""
    for env, value in s3.cli_environment().items():
        monkeypatch.setenv(env, value)
    store = demo_bucket(s3)
    now = datetime.now(UTC)
    key = land_validated(store, now - timedelta(days=1), rows, seed=5)
    snapshot = assemble_snapshot(store, DEMO, RunWindow(now, DEMO.training.window_days))
    outcome = train_model(snapshot.train, FAST, ON_CPU, epochs=2)
    registry = ModelRegistry(store, DEMO.data.bucket)
    return store, registry, register_candidate(registry, DEMO, outcome, snapshot, {}), key


def test_a_registered_version_carries_its_importance_and_explains_a_batch_prediction(
    s3, monkeypatch, capsys
) -> None:
    store, registry, version, key = trained(s3, monkeypatch, rows=3000)

    stored = registry.get(DEMO.name, version.version).importance
    assert stored is not None and set(stored.values) == set(DEMO.model.features.all)
    assert stored.rows == IMPORTANCE_ROWS and stored.library.startswith("shap ")
    assert stored.max_additivity_gap <= ADDITIVITY_TOLERANCE and max(stored.values.values()) > 0
    assert main(["--project", str(PROJECT_ROOT), "models", "show", DEMO.name, "1"]) == 0
    shown = capsys.readouterr().out
    top, _ = stored.ranked()[0]
    assert f"feature importance (v1): {stored.method}" in shown
    assert f"    1. {top} " in shown and f"  {len(stored.values)}. " in shown

    scored_batch(s3, store, version.version, key)
    row_key = decode(store.get(DEMO.data.bucket, key), "parquet").column("transaction_id")[7]
    explain = ["--project", str(PROJECT_ROOT), "explain", DEMO.name, row_key.as_py()]

    assert main([*explain, "--source", "batch", "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    attributions = [a["attribution"] for a in explained["attributions"]]
    assert explained["model_version"] == version.version and len(attributions) == 32
    gap = explained["base_value"] + sum(attributions) - explained["score"]
    assert abs(gap) <= ADDITIVITY_TOLERANCE == explained["additivity_tolerance"]
    assert abs(explained["score"] - explained["stored_score"]) <= 1e-5  # what batch stored
    assert [abs(a) for a in attributions] == sorted((abs(a) for a in attributions), reverse=True)
    assert "holdout (recomputed from 1 of its 1 snapshot object(s))" in explained["background"]

    assert main([*explain, "--source", "batch"]) == 0
    text = capsys.readouterr().out
    assert f"== batch prediction of {row_key.as_py()}: score" in text
    assert "tolerance 1e-06: ok)" in text and "MISMATCH" not in text

    assert main([*explain[:-1], "no-such-key", "--source", "batch"]) == 1
    assert "error: card_fraud: no prediction of 'no-such-key' found" in capsys.readouterr().out


def test_a_stream_prediction_is_explained_from_its_event_read_back_off_the_input_topic(
    s3, kafka_broker, monkeypatch, capsys
) -> None:
    from kafka import KafkaProducer
    from loopline.serving.cache import served_model
    from loopline.serving.inputs import served_scores
    from loopline.streaming.topics import ensure_topics

    store, registry, version, key = trained(s3, monkeypatch, rows=2000)
    streaming, bootstrap = DEMO.streaming, kafka_broker.bootstrap
    assert streaming is not None
    ensure_topics(bootstrap, [streaming])
    row = decode(store.get(DEMO.data.bucket, key), "parquet").slice(3, 1)
    features = row.select(DEMO.model.features.all).to_pylist()[0]
    event_id = f"explain-{version.created_at.timestamp()}"  # unique on the session's broker
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    sent = producer.send(
        streaming.input_topic, key=event_id.encode(), value=json.dumps(features).encode()
    ).get(timeout=30)
    # The prediction as a replica writes it (`streaming.consumer`), scored as it scores.
    serve = served_model(DEMO.name, version.version, lambda: registry)
    score = float(served_scores(serve, row, DEMO.model)[0])
    where = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
    for name, source in (
        (event_id, {**where, "timestamp_ms": sent.timestamp}),
        (f"{event_id}-old", None),
    ):
        prediction = {
            "event_id": name,
            "score": score,
            "model_version": version.version,
            "input": source,
        }
        producer.send(
            streaming.output_topic, key=name.encode(), value=json.dumps(prediction).encode()
        )
    producer.flush()
    producer.close()
    explain = ["--project", str(PROJECT_ROOT), "explain", DEMO.name]
    stream = ["--source", "stream", "--bootstrap", bootstrap]

    assert main([*explain, event_id, *stream, "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    attributions = [a["attribution"] for a in explained["attributions"]]
    assert explained["kind"] == "stream" and explained["stored_score"] == score
    gap = explained["base_value"] + sum(attributions) - explained["score"]
    assert abs(gap) <= ADDITIVITY_TOLERANCE and abs(explained["score"] - score) <= 1e-5
    assert {a["feature"]: a["value"] for a in explained["attributions"]} == pytest.approx(features)

    # A replica older than tracing named no input: said so, never guessed.
    assert main([*explain, f"{event_id}-old", *stream]) == 1
    assert "names no input topic, partition and offset" in capsys.readouterr().out
