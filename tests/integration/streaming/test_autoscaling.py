"""Auto-scaling through the real parts: replica processes with a Keras champion, the real
broker and S3, the monitor's pass as the stream_monitor DAG runs it. A burst of events (the
injected load) scales one replica out at once to the topic's partition count, never beyond it
though the lag and `replicas.max` ask for more; when the lag is gone, scale-in waits for the
stabilisation window and then goes back to `replicas.min`; every event is scored."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from loopline.spec import load_spec
from loopline.stack.config import S3_ACCESS_KEY, S3_SECRET_KEY
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.streaming.deployment import SlotDeployment
from loopline.streaming.lag import group_lag
from loopline.streaming.local_backend import LocalProcessBackend
from loopline.streaming.monitor import ScalingWindow, monitor_once
from loopline.streaming.topics import ensure_topics
from support.batch_world import crown_champion, land_validated
from support.streams import as_records, feature_events, produce, read_topic
from support.validated_data import DEMO

TOPIC_PARTITIONS = 3  # the topic exists with fewer partitions than the spec's 4
BURST = 6_000  # the lag alone asks for 30 replicas: far beyond the cap of 3
STABILISATION = 120.0


def scaling_spec(folder: Path) -> Path:
    """The demo with 4 partitions, replicas.max 4 and a lag target of 200 per replica. The
    latency target is out of reach on purpose: a burst's queued events are late, and the 60 s
    latency window would keep the replicas out after the lag is gone; here the lag alone
    decides (the latency triggers are unit-tested)."""
    document = DEMO.model_dump(mode="json", exclude_none=True)
    document["streaming"].update(
        input_topic="scaling.events",
        output_topic="scaling.scores",
        consumer_group="scaling-scorer",
        partitions=4,
        replicas={"min": 1, "max": 4},
        lag_per_replica=200,
        p99_latency_ms=600_000,
        scale_in_after_seconds=STABILISATION,
    )
    path = folder / f"{DEMO.name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def deployment(s3, kafka_broker, tmp_path):
    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=3000)
    version = crown_champion(store)
    spec_path = scaling_spec(tmp_path)
    spec = load_spec(spec_path)
    # Created earlier with 3 partitions: a fourth replica would idle.
    older = spec.streaming.model_copy(update={"partitions": TOPIC_PARTITIONS})
    ensure_topics(kafka_broker.bootstrap, [older])
    settings = S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json()
    backend = LocalProcessBackend(
        spec.name, spec_path, kafka_broker.bootstrap, tmp_path / "state", settings,
        spec.streaming.consumer_group,
    )  # fmt: skip
    deployment = SlotDeployment(backend)
    try:
        yield spec, deployment, kafka_broker, version, tmp_path
    finally:
        deployment.stop()


def test_a_burst_scales_out_to_the_partitions_and_idle_scales_back_in(deployment) -> None:
    spec, deployment, broker, version, folder = deployment
    streaming = spec.streaming
    assert deployment.deploy(version, 1).verdict == "done"
    window = ScalingWindow(folder / "scaling-window.json", streaming.scale_in_after_seconds)

    quiet = monitor_once(deployment, broker.bootstrap, streaming, version, window)
    assert quiet.decision.action == "no_change" and deployment.replica_count() == 1

    events = feature_events(spec, BURST, seed=11, prefix="s")
    # The replica is paused (SIGSTOP) while the burst lands and the monitor looks: on a quiet
    # machine it drained a burst of 30,000 events before the monitor measured the lag (seen in CI).
    with paused(deployment):
        produce(broker.bootstrap, streaming.input_topic, as_records(events))
        burst_at = time.time()
        surge = monitor_once(deployment, broker.bootstrap, streaming, version, window, now=burst_at)

    numbers = surge.decision.numbers
    assert numbers["total_lag"] > 3 * streaming.lag_per_replica, numbers  # the burst is seen
    assert surge.decision.action == "scale_out"
    # Capped at the topic's partitions: not the lag's 100+, not the spec's max or partitions.
    assert surge.decision.desired == TOPIC_PARTITIONS and numbers["cap"] == TOPIC_PARTITIONS
    assert surge.scaled is not None and surge.scaled.verdict == "done", surge.scaled
    assert deployment.replica_count() == TOPIC_PARTITIONS
    beats = deployment.heartbeats()
    assert len(beats) == TOPIC_PARTITIONS and {b["state"] for b in beats} == {"running"}
    assert {b["model_version"] for b in beats} == {version}

    predictions = read_topic(
        broker.bootstrap, streaming.output_topic, until=BURST, timeout=180, ids=set(events)
    )
    assert set(events) <= {p["event_id"] for p in predictions}  # nothing lost
    _wait_for_no_lag(broker, streaming)

    # Idle: the lag wants replicas.min, but the surge's decision is inside the window.
    held = monitor_once(deployment, broker.bootstrap, streaming, version, window, now=burst_at + 5)
    assert held.decision.desired == TOPIC_PARTITIONS and held.scaled is None
    assert any("stabilisation window" in reason for reason in held.decision.reasons)

    later = burst_at + STABILISATION + 5
    idle = monitor_once(deployment, broker.bootstrap, streaming, version, window, now=later)
    assert idle.decision.action == "scale_in" and idle.decision.desired == 1
    assert idle.scaled is not None and idle.scaled.verdict == "done"
    assert deployment.replica_count() == 1
    assert json.loads((folder / "scaling-window.json").read_text())[-1][1] == 1


def _wait_for_no_lag(broker, streaming, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group_lag(broker.bootstrap, streaming.consumer_group, streaming.input_topic).total == 0:
            return
        time.sleep(1)
    raise AssertionError("the group's lag never reached 0")


@contextmanager
def paused(deployment: SlotDeployment) -> Iterator[None]:
    """Every running replica stopped (SIGSTOP) inside the block, for seconds: well within
    the heartbeat's staleness limit, so the monitor does not take them for dead."""
    pids = [beat["pid"] for beat in deployment.heartbeats()]
    assert pids, "no replica to pause"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
