"""The batch scoring DAG on a warm Spark Connect server, against spark-submit on the same data.

The session's Connect server (fixture ``spark_connect``) stays up between runs, as the local
stack's does: the second run of a model version finds Python workers that already hold it."""

from __future__ import annotations

import os
from datetime import date

import pyarrow as pa
import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.batch.connect import CONNECT_MODE_ENV, ConnectUnavailable, client_url, warm_session
from loopline.data.predictions import committed_partitions
from loopline.records import RecordStage, RecordStore
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import asset_events
from support.batch_world import SPEC, crown_champion, land_validated, use_connections
from support.paths import DAGS_FOLDER

OBJECTS, ROWS = 2, 3000


@pytest.fixture
def world(airflow_db, s3, spark_connect, monkeypatch: pytest.MonkeyPatch):
    store = ObjectStore(s3.client())
    land_validated(store, objects=OBJECTS, rows=ROWS)
    return store, crown_champion(store)


def test_connect_scores_as_spark_submit_does_and_a_second_run_finds_warm_workers(
    world, s3, spark_connect, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    store, version = world
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]

    use_connections(monkeypatch, s3, "local[2,4]")
    submitted = dag.test(run_conf={"window_days": 2})
    submit_scores = _committed_scores(store)
    use_connections(monkeypatch, s3, spark_connect)
    over_connect = dag.test(run_conf={"window_days": 2})
    connect_scores = _committed_scores(store)
    # At once: Spark stops Python workers idle for a minute (PythonWorkerFactory).
    capsys.readouterr()
    again = dag.test(run_conf={"window_days": 2})
    log = capsys.readouterr().out

    assert over_connect.state == submitted.state == again.state == "success"
    # Exactly once, the same rows, the same scores from either engine.
    assert connect_scores.num_rows == submit_scores.num_rows == OBJECTS * ROWS
    assert len(set(connect_scores["transaction_id"].to_pylist())) == OBJECTS * ROWS
    assert (
        connect_scores.sort_by("transaction_id")
        .select(["transaction_id", "score"])
        .equals(submit_scores.sort_by("transaction_id").select(["transaction_id", "score"]))
    )
    first, second = _summary(store, over_connect.run_id), _summary(store, again.run_id)
    assert first["engine"] == "spark-connect" and first["model_version"] == version
    assert first["spark_master"] == "local[2,4]"
    assert _summary(store, submitted.run_id)["engine"] == "spark-submit"
    assert second["objects_on_warm_workers"] == OBJECTS, second
    assert f"{OBJECTS} of {OBJECTS} objects scored by Python workers already holding" in log
    [event] = asset_events("s3://loopline/card_fraud/predictions", again.run_id)
    assert event.extra["rows"] == OBJECTS * ROWS


def test_a_new_champion_is_scored_by_the_next_run_on_the_same_server(
    world, s3, spark_connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, version = world
    use_connections(monkeypatch, s3, spark_connect)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]
    before = dag.test(run_conf={"window_days": 2})
    newer = crown_champion(store)

    after = dag.test(run_conf={"window_days": 2})

    assert before.state == after.state == "success" and newer != version
    assert set(_committed_scores(store)["model_version"].to_pylist()) == {newer}
    summary = _summary(store, after.run_id)
    assert summary["model_version"] == newer
    assert summary["objects_on_warm_workers"] == 0  # a new version: workers of its own


def test_another_registrys_version_1_is_never_served_from_a_warm_worker(
    world, s3, spark_connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wiped bucket (or another project on the same server) holds another "v1": the warm
    workers' v1 must not score it."""
    store, version = world
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]
    use_connections(monkeypatch, s3, spark_connect)
    assert dag.test(run_conf={"window_days": 2}).state == "success"
    s3.reset()
    land_validated(store, objects=OBJECTS, rows=ROWS + 500)  # other rows: another model
    assert crown_champion(store) == version

    over_connect = dag.test(run_conf={"window_days": 2})
    connect_scores = _committed_scores(store)
    use_connections(monkeypatch, s3, "local[2,4]")  # a fresh process: no cache at all
    submitted = dag.test(run_conf={"window_days": 2})

    assert over_connect.state == submitted.state == "success"
    assert _summary(store, over_connect.run_id)["objects_on_warm_workers"] == 0
    assert _scores_by_key(connect_scores).equals(_scores_by_key(_committed_scores(store)))


def _scores_by_key(table: pa.Table) -> pa.Table:
    return table.sort_by("transaction_id").select(["transaction_id", "score"])


def test_a_server_that_is_down_is_named_in_the_error(spark_connect) -> None:
    from loopline.stack.config import free_port

    port = free_port()
    with pytest.raises(ConnectUnavailable, match=f"Spark Connect server localhost:{port} "):
        _open_session(client_url("127.0.0.1", port, "secret-token"), retries=1)
    # pyspark's process-wide Connect mark is gone: a spark-submit started now would run
    assert CONNECT_MODE_ENV not in os.environ


def test_the_server_refuses_a_client_without_its_token(spark_connect) -> None:
    without, wrong = (client_url("127.0.0.1", spark_connect.port, t) for t in (None, "not-it"))
    with pytest.raises(ConnectUnavailable, match="authentication token") as refused:
        _open_session(without, retries=0)
    assert spark_connect.token not in str(refused.value)
    with pytest.raises(ConnectUnavailable, match="Invalid authentication token"):
        _open_session(wrong, retries=0)
    assert CONNECT_MODE_ENV not in os.environ


def _open_session(url: str, retries: int) -> None:
    with warm_session(url, SPEC.name, 1, retries=retries):
        pass


def _committed_scores(store: ObjectStore) -> pa.Table:
    output = SPEC.batch_inference.output_prefix
    partitions = committed_partitions(store, SPEC.data.bucket, output, date.min, date.max)
    tables = [
        decode(store.get(SPEC.data.bucket, key), "parquet")
        for partition in partitions
        for key in partition.files
    ]
    return pa.concat_tables(tables)


def _summary(store: ObjectStore, run_id: str) -> dict:
    records = RecordStore(store, SPEC.data.bucket)
    return records.read(SPEC.name, RecordStage.BATCH_SCORING, run_id).payload
