"""The batch scoring DAG through Airflow: spark-submit on local mode, real S3, the champion."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow_helpers import asset_events
from batch_world import SPEC, crown_champion, land_validated, use_connections
from conftest import DAGS_FOLDER
from loopline.data.predictions import committed_files
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore


@pytest.fixture
def world(airflow_db, s3, monkeypatch: pytest.MonkeyPatch):
    use_connections(monkeypatch, s3, "local[2,4]")
    store = ObjectStore(s3.client())
    yesterday = land_validated(store, objects=1, rows=4000)
    return store, crown_champion(store), yesterday


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
    assert event.extra["spark_master"] == "local[2,4]"


def test_batches_landed_in_any_format_are_scored_after_the_gate(
    airflow_db, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSV, JSON Lines and Parquet holding float64 where the spec says float32: the gate
    writes each to the validated zone as Parquet in the spec's types, and scoring reads all."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    from conftest import PROJECT_ROOT
    from loopline.demo.card_transactions import generate
    from loopline.storage.formats import encode
    from loopline.validation.gate import validate_and_route
    from loopline.validation.suites import load_suite

    use_connections(monkeypatch, s3, "local[2,4]")
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    suite = load_suite(PROJECT_ROOT / "include" / "expectations" / "card_fraud.json")
    day = datetime.now(UTC) - timedelta(days=1)
    batches = {"csv": 700, "jsonl": 500, "parquet": 900}
    for number, (file_format, rows) in enumerate(batches.items()):
        table = generate(rows, seed=20 + number, start=day, batch_id=f"f{number}")
        if file_format == "parquet":
            index = table.schema.get_field_index("amount")
            table = table.set_column(index, "amount", table["amount"].cast(pa.float64()))
        key = f"{SPEC.data.landing_prefix}dt={day:%Y-%m-%d}/batch.{file_format}"
        store.put_new(SPEC.data.bucket, key, encode(table, file_format))
        assert validate_and_route(store, SPEC.data, suite, key).passed
    crown_champion(store)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]

    run = dag.test(run_conf={"window_days": 2}, logical_date=None)

    assert run.state == "success"
    partition = f"{SPEC.batch_inference.output_prefix}dt={day:%Y-%m-%d}/"
    scored = [
        decode(store.get(SPEC.data.bucket, key), "parquet")
        for key in committed_files(store, SPEC.data.bucket, partition)
    ]
    assert sum(table.num_rows for table in scored) == sum(batches.values())
