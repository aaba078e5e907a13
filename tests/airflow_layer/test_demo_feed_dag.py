"""The demo feed DAG, run whole by Airflow (``dag.test()``) against a real S3 server."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import asset_events
from support.paths import DAGS_FOLDER

LANDING = "card_fraud/landing/"


@pytest.fixture
def feed_dag(airflow_db, s3, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    ObjectStore(s3.client()).ensure_bucket("loopline")
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.demo_feed"]


def test_a_run_lands_one_batch_with_the_requested_params(feed_dag, s3) -> None:
    conf = {
        "rows": 777,
        "file_format": "csv",
        "mean_shift": 1.5,
        "drifted_features": 2,
        "seed": 123,
    }

    run = feed_dag.test(run_conf=conf)

    assert run.state == "success"
    store = ObjectStore(s3.client())
    [key] = list(store.list_keys("loopline", LANDING))
    assert key.endswith(".csv")
    table = decode(store.get("loopline", key), "csv")
    assert table.num_rows == 777
    metadata = store.metadata("loopline", key)
    assert metadata["loopline-seed"] == "123"
    assert "mean_shift=1.5" in metadata["loopline-drift"]
    [event] = asset_events("s3://loopline/card_fraud/landing", run.run_id)
    assert event.extra["key"] == key and event.extra["rows"] == 777


def test_defaults_come_from_the_spec(feed_dag, s3) -> None:
    run = feed_dag.test()

    assert run.state == "success"
    store = ObjectStore(s3.client())
    [key] = list(store.list_keys("loopline", LANDING))
    assert key.endswith(".parquet")
    assert decode(store.get("loopline", key), "parquet").num_rows == 5000


def test_params_outside_their_schema_are_refused(feed_dag) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="rows"):
        feed_dag.test(run_conf={"rows": 0})
