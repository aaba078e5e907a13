"""The streaming DAGs through Airflow (``dag.test()``) with real replica processes, a real
broker, real S3 and a real Keras champion: deploy two replicas, roll them to a new version
while events flow (nothing lost, every replica on the new version), replace a replica killed
with SIGKILL (by its supervisor) and a slot killed whole (by the monitor), record the scaling
decision, and stop."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.records import RecordStage, RecordStore
from loopline.storage.objects import ObjectStore
from loopline.streaming.consumer import heartbeat_path
from loopline.streaming.lag import group_lag
from support.batch_world import crown_champion, land_validated
from support.paths import DAGS_FOLDER
from support.servers import KafkaBroker
from support.streams import as_records, feature_events, produce, read_topic
from support.validated_data import DEMO

STREAMING = DEMO.streaming


@pytest.fixture
def world(airflow_db, s3, tmp_path, monkeypatch: pytest.MonkeyPatch):
    # A broker of its own, not the session's kafka_broker: the DAGs stream on the demo spec's
    # own topics and consumer group, whose offsets must start empty for each test.
    with KafkaBroker.start() as broker:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
        extra = {"bootstrap.servers": broker.bootstrap, "session.timeout.ms": "2000"}
        kafka = {"conn_type": "kafka", "extra": extra}  # as the local stack's connection
        monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka))
        monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
        store = ObjectStore(s3.client())
        land_validated(store, objects=1, rows=3000)
        dags = DagBag(dag_folder=str(DAGS_FOLDER)).dags
        try:
            yield broker, store, dags, tmp_path
        finally:
            dags["card_fraud.stream_deploy"].test(run_conf={"action": "stop"})


def beats(state) -> dict[int, dict]:
    folder = heartbeat_path(state / "streaming", DEMO.name, 0).parent
    return {
        int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("replica-*.json")
    }


def test_deploy_roll_replace_and_stop_through_airflow(world) -> None:
    broker, store, dags, state = world
    v1 = crown_champion(store)
    deploy = dags["card_fraud.stream_deploy"]

    run = deploy.test(run_conf={"replicas": 2})

    assert run.state == "success"
    # The form's default action (a champion event's run has no other) is deploy.
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {
        "choose": "success",
        "deploy": "success",
        "scale": "skipped",
        "stop": "skipped",
    }
    assert {slot: beat["model_version"] for slot, beat in beats(state).items()} == {0: v1, 1: v1}

    # A new champion rolls out while events flow: nothing is lost, both end on v2.
    v2 = crown_champion(store)
    events = feature_events(DEMO, 1200, seed=9, prefix="r")
    records = as_records(events)

    def feed() -> None:
        for start in range(0, len(records), 100):
            produce(broker.bootstrap, STREAMING.input_topic, records[start : start + 100])
            time.sleep(0.5)

    feeder = threading.Thread(target=feed)
    feeder.start()
    rolled = deploy.test(run_conf={"model_version": str(v2)})
    feeder.join()
    assert rolled.state == "success"
    assert {slot: beat["model_version"] for slot, beat in beats(state).items()} == {0: v2, 1: v2}
    predictions = read_topic(
        broker.bootstrap, STREAMING.output_topic, until=len(events), timeout=120
    )
    assert set(events) <= {p["event_id"] for p in predictions}
    assert {p["model_version"] for p in predictions} <= {v1, v2}

    # A replica killed with SIGKILL is restarted by its supervisor at once, no monitor needed.
    killed = beats(state)[1]["pid"]
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not restarted(beats(state)[1], killed):
        time.sleep(0.5)
    assert restarted(beats(state)[1], killed) and beats(state)[1]["model_version"] == v2

    # Dynamic scaling: a slot killed whole (replica and supervisor, as a pod deleted) is back
    # within one monitor run.
    os.killpg(os.getpgid(beats(state)[1]["pid"]), signal.SIGKILL)
    monitor = dags["card_fraud.stream_monitor"].test()
    assert monitor.state == "success"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and beats(state)[1].get("state") != "running":
        time.sleep(0.5)
    assert beats(state)[1]["state"] == "running" and beats(state)[1]["model_version"] == v2
    records_ = list(RecordStore(store, "loopline").records("card_fraud", RecordStage.STREAMING))
    subjects = [(r.subject, r.verdict) for r in records_]
    assert ("replace_dead", "replaced") in subjects
    scaling = [r for r in records_ if r.subject == "scaling"][-1]
    assert scaling.numbers["current"] == 2 and "total_lag" in scaling.numbers
    assert scaling.numbers["desired"] >= 2  # the count asked for holds: no scale-in yet
    assert group_lag(broker.bootstrap, STREAMING.consumer_group, STREAMING.input_topic).total >= 0


def restarted(beat: dict, killed: int) -> bool:
    return beat.get("pid") != killed and beat.get("state") == "running"


def test_deploy_refuses_a_version_the_gates_refused_before_touching_kafka(
    airflow_db, s3, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No broker here: a refused version must fail the task before topics or replicas."""
    from support.judged_versions import crown, empty_registry, judge_as, register

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    nowhere = {"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:9"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(nowhere))
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
    registry = empty_registry(s3)
    v1, v2 = register(registry, tmp_path), register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    judge_as(registry, v2, auc=0.80, run_id="r2")  # a challenger the gates refused
    deploy = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.stream_deploy"]

    run = deploy.test(run_conf={"model_version": str(v2), "replicas": 1})

    assert run.state == "failed"
    [refused] = RecordStore(registry.store, "loopline").records("card_fraud", RecordStage.STREAMING)
    assert (refused.verdict, refused.subject) == ("refused", "deploy")
    assert "v2 may not serve: its judgement in run r2 refused it" in refused.reasons[0]
    assert not (tmp_path / "streaming").exists()  # no replica state: nothing started
