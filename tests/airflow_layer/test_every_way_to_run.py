"""Every DAG runs every way a user starts it: the trigger form, REST with "logical_date": null
(no data interval in Airflow 3), REST with a logical date, and its schedule.

Each way is run through ``dag.test()`` against real S3 (and GE, TensorFlow, spark-submit), so a
template that needs a data interval, or a task that assumes conf, fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.demo.card_transactions import generate
from loopline.registry import CHAMPION, ModelRegistry
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from support.batch_world import crown_champion, land_validated, use_connections
from support.paths import DAGS_FOLDER

NOW = datetime.now(UTC)


def scheduled(dag: Any) -> dict[str, Any]:
    """The logical date and run-after of the DAG's next scheduled run, from its timetable."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=False)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    return {"logical_date": info.logical_date, "run_after": info.run_after}


def every_way(dag: Any, conf: dict[str, Any], *, on_schedule: bool = True) -> list[tuple]:
    """(way, dag.test keyword arguments) for each way a user starts `dag`."""
    ways = [
        ("trigger form", {"run_conf": conf}),
        ("REST, logical_date null", {"run_conf": conf, "logical_date": None}),
        ("REST, a logical date", {"run_conf": conf, "logical_date": NOW - timedelta(hours=1)}),
    ]
    if on_schedule:
        ways.append(("schedule", scheduled(dag)))
    return ways


def run_every_way(dag: Any, conf: dict[str, Any], before_each: Callable[[], None], **kw) -> None:
    for way, arguments in every_way(dag, conf, **kw):
        before_each()
        run = dag.test(**arguments)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert run.state == "success", f"{dag.dag_id} started by {way}: {states}"


@pytest.fixture
def dags(airflow_db, s3, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    use_connections(monkeypatch, s3, "local[2,4]")
    ObjectStore(s3.client()).ensure_bucket("loopline")
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags


def test_the_demo_feed(dags) -> None:
    run_every_way(dags["card_fraud.demo_feed"], {"rows": 500}, lambda: None)


def test_the_validation_gate(dags, s3) -> None:
    store, batches = ObjectStore(s3.client()), iter(range(10))

    def land() -> None:  # each run validates the file that landed before it
        number = next(batches)
        data = encode(generate(300, seed=number, batch_id=f"b{number}"), "parquet")
        store.put_new("loopline", f"card_fraud/landing/dt=2026-11-23/b{number}.parquet", data)

    run_every_way(dags["card_fraud.validate"], {}, land)
    assert not list(store.list_keys("loopline", "card_fraud/landing/"))


def test_retraining(dags, s3) -> None:
    store = ObjectStore(s3.client())
    # Before the weekly schedule's last tick, so that every way's window holds it.
    day = scheduled(dags["card_fraud.train"])["run_after"] - timedelta(days=1)
    data = encode(generate(4000, seed=8, start=day), "parquet")
    store.put_new("loopline", f"card_fraud/validated/dt={day:%Y-%m-%d}/h.parquet", data)

    run_every_way(dags["card_fraud.train"], {"epochs": 1, "reason": "every way"}, lambda: None)
    assert len(ModelRegistry(store, "loopline").versions("card_fraud")) == 4


def test_rollback(dags, s3, tmp_path) -> None:
    registry = ModelRegistry(ObjectStore(s3.client()), "loopline")
    for version in range(1, 5):  # four promotions: three rollbacks to walk back
        folder = tmp_path / f"v{version}"
        folder.mkdir()
        (folder / "model.keras").write_text(f"v{version}")
        registry.register("card_fraud", folder, metrics={}, input_schema=[])
        registry.move_alias(
            "card_fraud", CHAMPION, version, expected=version - 1 or None,
            action="promote", reason="test", by="test",
        )  # fmt: skip

    dag = dags["card_fraud.rollback"]
    run_every_way(dag, {"reason": "every way"}, lambda: None, on_schedule=False)
    assert registry.alias("card_fraud", CHAMPION) == 1


def test_replay(dags, s3) -> None:
    store, batches = ObjectStore(s3.client()), iter(range(10))
    quarantined = "card_fraud/quarantine/dt=2026-11-23/r.parquet"

    def quarantine() -> None:  # the run before it requeued one: the validate DAG took it
        store.delete_keys("loopline", ["card_fraud/landing/dt=2026-11-23/r.parquet"])
        number = next(batches)
        data = encode(generate(100, seed=number, batch_id=f"r{number}"), "parquet")
        store.put_new("loopline", quarantined, data)

    conf = {"what": "quarantine", "objects": [quarantined]}
    run_every_way(dags["card_fraud.replay"], conf, quarantine, on_schedule=False)
    assert store.head("loopline", quarantined) is None


def test_batch_scoring(dags, s3, spark_connect, monkeypatch: pytest.MonkeyPatch) -> None:
    use_connections(monkeypatch, s3, spark_connect)  # the local stack's engine
    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=2000)
    crown_champion(store)

    run_every_way(dags["card_fraud.batch_score"], {"window_days": 2}, lambda: None)


def test_the_drift_audit(dags, s3) -> None:
    store = ObjectStore(s3.client())
    land_validated(store, objects=2, rows=3000)  # no profiles yet: the audit makes them
    crown_champion(store)

    run_every_way(dags["card_fraud.drift_audit"], {}, lambda: None)


def test_the_streaming_dags(dags, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import json

    from support.servers import KafkaBroker

    # A broker of its own: the DAGs stream on the demo spec's own topics (see
    # test_streaming_dags), which must start empty.
    with KafkaBroker.start() as broker:
        kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": broker.bootstrap}}
        monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka))
        monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
        # Deploying is exercised with real replicas in test_streaming_dags; here, each way
        # of starting the DAG (its topics created, nothing deployed) and the monitor's.
        deploy = dags["card_fraud.stream_deploy"]
        run_every_way(deploy, {"action": "stop"}, lambda: None, on_schedule=False)
        run_every_way(dags["card_fraud.stream_monitor"], {}, lambda: None)
