"""Batch scoring on real Spark (local mode) against a real S3 server with a real model."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from loopline.batch.commit import commit_output
from loopline.batch.scoring import score_with_spark
from loopline.data.predictions import committed_partitions, partition_prefix
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import generate
from loopline.records import RecordStage, RecordStore
from loopline.registry import ModelRegistry
from loopline.serving.artifacts import load_model
from loopline.serving.evaluate import score
from loopline.spec import load_spec
from loopline.storage.formats import decode, encode
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.training.register import register_candidate
from loopline.training.snapshot import assemble_snapshot
from loopline.training.trainer import train_model
from support.batch_world import scoring_job
from support.paths import PIPELINES
from support.servers import S3_ACCESS_KEY, S3_SECRET_KEY

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("loopline-test")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_scores_equal_the_models_own_predictions(s3, spark, tmp_path) -> None:
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    keys = []
    for part in range(3):
        day = NOW - timedelta(days=part + 1)
        key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/part-{part}.parquet"
        table = generate(3000, seed=part, start=day, batch_id=f"p{part}")
        store.put_new(SPEC.data.bucket, key, encode(table, "parquet"))
        keys.append(key)
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, SPEC.training.window_days))
    outcome = train_model(snapshot.train, SPEC.model, SPEC.training, epochs=2)
    registry = ModelRegistry(store, SPEC.data.bucket)
    version = register_candidate(registry, SPEC, outcome, snapshot, {}).version
    job = scoring_job(s3, version, run_id="manual__test")

    manifest = score_with_spark(spark, job, keys).manifest

    assert sum(row["rows"] for row in manifest) == 9000
    scored = pa.concat_tables(
        [decode(store.get(SPEC.data.bucket, row["key"]), "parquet") for row in manifest]
    )
    registry.download(SPEC.name, version, tmp_path / "model")
    rows = pa.concat_tables([decode(store.get(SPEC.data.bucket, k), "parquet") for k in keys])
    expected = dict(
        zip(
            rows.column("transaction_id").to_pylist(),
            score(load_model(tmp_path / "model"), rows, SPEC.model),
            strict=True,
        )
    )
    got = dict(zip(scored["transaction_id"].to_pylist(), scored["score"].to_pylist(), strict=True))
    assert got.keys() == expected.keys()
    ids = sorted(got)
    assert np.allclose([got[i] for i in ids], [expected[i] for i in ids], atol=1e-5)
    assert set(scored["model_version"].to_pylist()) == {version}

    # Commit, then re-run the same window: each date is replaced, never duplicated.
    output = SPEC.batch_inference.output_prefix
    committing = {"model_version": version, "staging_prefix": job.staging_prefix}
    first = commit_output(
        store, SPEC.data.bucket, output, manifest, run_id="manual__test", **committing
    )
    again = score_with_spark(spark, job, keys).manifest
    second = commit_output(
        store, SPEC.data.bucket, output, again, run_id="manual__again", **committing
    )
    assert first == second and sum(second.values()) == 9000
    days = sorted(datetime.fromisoformat(day).date() for day in second)
    partitions = committed_partitions(store, SPEC.data.bucket, output, days[0], days[-1])
    assert [p.day for p in partitions] == sorted(second)
    for committed in partitions:
        files, partition = committed.files, partition_prefix(output, committed.day)
        on_s3 = [k for k in store.list_keys(SPEC.data.bucket, partition) if k.endswith(".parquet")]
        assert sorted(on_s3) == sorted(files) and all("manual__again" in f for f in files)
    assert not list(store.list_keys(SPEC.data.bucket, "card_fraud/_staging/"))


@pytest.fixture
def registered(s3):
    """Validated data of one day and a registered model trained on it."""
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    day = NOW - timedelta(days=1)
    key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/good.parquet"
    store.put_new(SPEC.data.bucket, key, encode(generate(2000, seed=9, start=day), "parquet"))
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, SPEC.training.window_days))
    outcome = train_model(snapshot.train, SPEC.model, SPEC.training, epochs=1)
    registry = ModelRegistry(store, SPEC.data.bucket)
    return store, register_candidate(registry, SPEC, outcome, snapshot, {}).version


def test_an_object_without_a_model_column_fails_naming_it(s3, spark, registered) -> None:
    store, version = registered
    key = f"{SPEC.data.validated_prefix}dt=2026-11-22/old-schema.parquet"
    old = generate(100, seed=10).drop_columns(["amount"])
    store.put_new(SPEC.data.bucket, key, encode(old, "parquet"))
    message = r"old-schema\.parquet cannot be scored: no column 'amount'"
    with pytest.raises(Exception, match=message):
        score_with_spark(spark, scoring_job(s3, version, run_id="manual__schema"), [key])


def test_an_empty_window_scores_nothing_and_says_so(s3, registered, monkeypatch) -> None:
    from loopline.batch import job

    store, version = registered
    settings = S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY)
    monkeypatch.setenv("LOOPLINE_S3", settings.to_json())
    args = [
        "--spec",
        str(PIPELINES / "card_fraud.yaml"),
        "--run-id",
        "manual__empty",
        "--window-end",
        (NOW - timedelta(days=30)).isoformat(),
        "--model-version",
        str(version),
    ]
    assert job.main(args) == 0
    record = RecordStore(store, SPEC.data.bucket).read(
        SPEC.name, RecordStage.BATCH_SCORING, "manual__empty"
    )
    assert record.verdict == "scored" and record.numbers == {"rows": 0, "objects": 0}
    assert record.payload["objects"] == 0 and record.payload["rows"] == 0
    assert not list(store.list_keys(SPEC.data.bucket, SPEC.batch_inference.output_prefix + "dt="))


def test_an_unset_alias_skips_and_an_unknown_version_fails(s3, monkeypatch) -> None:
    from loopline.batch import job
    from loopline.registry import RegistryError

    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    settings = S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY)
    monkeypatch.setenv("LOOPLINE_S3", settings.to_json())
    spec, end = str(PIPELINES / "card_fraud.yaml"), NOW.isoformat()
    args = ["--spec", spec, "--run-id", "manual__fresh", "--window-end", end]
    assert job.main([*args, "--model-version", "champion"]) == 0  # a fresh project
    record = RecordStore(store, SPEC.data.bucket).read(
        SPEC.name, RecordStage.BATCH_SCORING, "manual__fresh"
    )
    assert record.verdict == "skipped" and record.reasons == ["card_fraud@champion is not set yet"]
    with pytest.raises(RegistryError, match="card_fraud has no version 7"):
        job.main([*args, "--model-version", "7"])


def test_rows_are_split_by_their_utc_date() -> None:
    from loopline.batch.scoring import split_by_day

    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    table = generate(400, seed=4, start=late)  # spans midnight: the 20th and the 21st
    parts = dict(split_by_day(table, "event_time"))

    assert sorted(parts) == ["2026-11-20", "2026-11-21"]
    assert sum(part.num_rows for part in parts.values()) == 400
    for day, part in parts.items():
        dates = {t.date().isoformat() for t in part.column("event_time").to_pylist()}
        assert dates == {day}
    one_day = table.slice(0, 10)
    [(day, same)] = list(split_by_day(one_day, "event_time"))
    assert day == "2026-11-20" and same is one_day
