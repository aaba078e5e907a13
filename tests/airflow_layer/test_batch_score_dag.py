"""The batch scoring DAG through Airflow: spark-submit on local[2], real S3, the champion."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow_helpers import asset_events
from conftest import DAGS_FOLDER, PIPELINES
from loopline.batch.commit import committed_files
from loopline.demo.card_transactions import generate
from loopline.promotion.flow import register_candidate
from loopline.registry import CHAMPION, ModelRegistry
from loopline.spec import load_spec
from loopline.storage.formats import decode, encode
from loopline.storage.objects import ObjectStore
from loopline.training.snapshot import assemble_snapshot
from loopline.training.trainer import train_model

SPEC = load_spec(PIPELINES / "card_fraud.yaml")


@pytest.fixture
def world(airflow_db, s3, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    spark = {"conn_type": "spark", "host": "local[2]", "extra": {"deploy-mode": "client"}}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(spark))
    # spark-submit comes with pyspark, next to this interpreter.
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    key = f"{SPEC.data.validated_prefix}dt={yesterday:%Y-%m-%d}/batch.parquet"
    start = yesterday.replace(hour=1, minute=0, second=0, microsecond=0)
    store.put_new(SPEC.data.bucket, key, encode(generate(4000, seed=3, start=start), "parquet"))
    registry = ModelRegistry(store, SPEC.data.bucket)
    snapshot = assemble_snapshot(store, SPEC, datetime.now(UTC))
    outcome = train_model(snapshot.train, SPEC.model, SPEC.training, epochs=2)
    version = register_candidate(registry, SPEC, outcome, snapshot, {}).version
    registry.move_alias(
        SPEC.name, CHAMPION, version, expected=None, action="set", reason="test", by="test"
    )
    return store, version, yesterday


def test_the_champion_scores_the_window_and_the_output_is_committed(world) -> None:
    store, version, yesterday = world
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]

    run = dag.test(run_conf={"window_days": 2})

    assert run.state == "success"
    partition = f"{SPEC.batch_inference.output_prefix}dt={yesterday:%Y-%m-%d}/"
    files = committed_files(store, SPEC.data.bucket, partition)
    scored = decode(store.get(SPEC.data.bucket, files[0]), "parquet")
    assert scored.num_rows == 4000
    assert set(scored.column_names) >= {
        "transaction_id",
        "is_fraud",
        "score",
        "model_version",
        "airflow_run_id",
    }
    assert set(scored["model_version"].to_pylist()) == {version}
    assert set(scored["airflow_run_id"].to_pylist()) == {run.run_id}
    [event] = asset_events("s3://loopline/card_fraud/predictions", run.run_id)
    assert event.extra["rows"] == 4000 and event.extra["model_version"] == version
