"""Set-up shared by the batch scoring DAG tests: validated data on S3, a champion, and the
connections the DAG's spark-submit needs."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from loopline.batch.scoring import ScoringJob
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import generate
from loopline.registry import CHAMPION, ModelRegistry
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.training.register import register_candidate
from loopline.training.snapshot import assemble_snapshot
from loopline.training.trainer import train_model

from support.paths import PIPELINES
from support.servers import S3_ACCESS_KEY, S3_SECRET_KEY, SparkConnectServer

SPEC = load_spec(PIPELINES / "card_fraud.yaml")


def use_connections(monkeypatch: pytest.MonkeyPatch, s3, spark: str | SparkConnectServer) -> None:
    """aws_default on the test's S3 server; spark_default on a master for spark-submit
    (``local[2,4]``, ``spark://...``) or on a Spark Connect server."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    if isinstance(spark, str):
        connection = {"conn_type": "spark", "host": spark, "extra": {"deploy-mode": "client"}}
    else:
        connection = spark.connection()
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(connection))
    # spark-submit comes with pyspark, next to this interpreter.
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")


def land_validated(store: ObjectStore, objects: int, rows: int) -> datetime:
    """`objects` validated Parquet files of `rows` rows each, all dated yesterday."""
    store.ensure_bucket(SPEC.data.bucket)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    start = yesterday.replace(hour=1, minute=0, second=0, microsecond=0)
    for number in range(objects):
        key = f"{SPEC.data.validated_prefix}dt={yesterday:%Y-%m-%d}/batch-{number}.parquet"
        table = generate(rows, seed=3 + number, start=start, batch_id=f"b{number}")
        store.put_new(SPEC.data.bucket, key, encode(table, "parquet"))
    return yesterday


def crown_champion(store: ObjectStore) -> int:
    """Train a small model on what is validated, register it and make it champion."""
    registry = ModelRegistry(store, SPEC.data.bucket)
    snapshot = assemble_snapshot(
        store, SPEC, RunWindow(datetime.now(UTC), SPEC.training.window_days)
    )
    outcome = train_model(snapshot.train, SPEC.model, SPEC.training, epochs=2)
    version = register_candidate(registry, SPEC, outcome, snapshot, {}).version
    previous = registry.alias(SPEC.name, CHAMPION)  # crowning again promotes a new version
    registry.move_alias(
        SPEC.name, CHAMPION, version, expected=previous, action="set", reason="test", by="test"
    )
    return version


def scoring_job(s3, version: int, run_id: str) -> ScoringJob:
    """The batch job's settings for the card_fraud spec on the test's S3 server."""
    return ScoringJob(
        pipeline=SPEC.name,
        bucket=SPEC.data.bucket,
        model_version=version,
        run_id=run_id,
        staging_prefix=f"{SPEC.name}/_staging/{run_id}/",
        spec_json=SPEC.model_dump_json(),
        s3_json=S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json(),
    )
