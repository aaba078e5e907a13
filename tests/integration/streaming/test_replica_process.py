"""Replica processes with a real Keras champion from the registry, on the real broker and S3:
predictions equal the model's own scores, `kill -9` mid-stream loses no event (a new replica
in the slot picks up from the last commit), and SIGTERM drains to zero lag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from loopline.records import RecordStage, RecordStore
from loopline.registry import ModelRegistry
from loopline.serving.artifacts import compiled, load_model
from loopline.serving.inputs import served_scores
from loopline.stack.config import S3_ACCESS_KEY, S3_SECRET_KEY
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.streaming.consumer import heartbeat_path
from loopline.streaming.lag import group_lag
from support.batch_world import crown_champion, land_validated
from support.paths import PIPELINES, PROJECT_ROOT
from support.servers import KafkaBroker
from support.streams import as_records, feature_events, produce, read_topic
from support.validated_data import DEMO

EVENTS = 1500


# A broker of its own, not the session's kafka_broker: this module streams on the demo spec's
# own topics and consumer group, which other modules use too; its offsets must start empty.
@pytest.fixture(scope="module")
def broker():
    with KafkaBroker.start() as broker:
        yield broker


def start_replica(
    broker,
    s3,
    version: int,
    state: Path,
    slot: int = 0,
    version_file: Path | None = None,
    cost_every: float = 60,
) -> subprocess.Popen:
    env = {
        **os.environ,
        "LOOPLINE_S3": S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json(),
    }
    spec = str(PIPELINES / "card_fraud.yaml")
    argv = ["--spec", spec, "--slot", str(slot), "--version", str(version)]
    argv += ["--bootstrap", broker.bootstrap, "--state-dir", str(state), "--metrics-port", "0"]
    argv += ["--cost-every", str(cost_every)]
    if version_file is not None:
        argv += ["--version-file", str(version_file)]
    return subprocess.Popen(
        [sys.executable, "-m", "loopline.streaming.replica", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_running(state: Path, process: subprocess.Popen, timeout: float = 120) -> dict:
    path = heartbeat_path(state, DEMO.name, 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the replica exited during start-up"
        if path.exists():
            beat = json.loads(path.read_text())
            if beat["pid"] == process.pid and beat["state"] == "running":
                return beat
        time.sleep(0.2)
    raise AssertionError("the replica never reported running")


def test_kill_9_mid_stream_loses_nothing_and_scores_are_the_models(
    broker, s3, tmp_path, monkeypatch, capsys
) -> None:
    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=3000)
    version = crown_champion(store)
    streaming = DEMO.streaming
    events = feature_events(DEMO, EVENTS, seed=5, prefix="k")
    records = as_records(events)
    first = start_replica(broker, s3, version, tmp_path)
    wait_running(tmp_path, first)

    # Events arrive over a few seconds; the replica dies (SIGKILL) a third of the way in.
    def feed() -> None:
        for start in range(0, EVENTS, 100):
            produce(broker.bootstrap, streaming.input_topic, records[start : start + 100])
            time.sleep(0.3)

    feeder = threading.Thread(target=feed)
    feeder.start()
    time.sleep(1.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = start_replica(broker, s3, version, tmp_path, cost_every=1)
    try:
        wait_running(tmp_path, second)
        feeder.join()
        predictions = read_topic(
            broker.bootstrap, streaming.output_topic, until=EVENTS, timeout=120
        )
        assert set(events) <= {p["event_id"] for p in predictions}  # at least once, none lost
        # Every score is the champion's own on the same features.
        # Loaded here, not from the per-process cache: another test's "card_fraud v1" is a
        # different model on a different S3 server.
        folder = tmp_path / "model"
        ModelRegistry(store, DEMO.data.bucket).download(DEMO.name, version, folder)
        serve = compiled(load_model(folder))
        own = served_scores(serve, pa.Table.from_pylist(list(events.values())), DEMO.model)
        expected = dict(zip(events, own, strict=True))
        assert all(abs(p["score"] - expected[p["event_id"]]) < 1e-5 for p in predictions)
        assert {p["model_version"] for p in predictions} == {version}
        # Its Prometheus endpoint counts what its heartbeat counts.
        beat = wait_counted(tmp_path)
        metrics = scrape(beat["metrics_url"])
        labels = '{pipeline="card_fraud",slot="0"}'
        assert metrics[f"loopline_stream_predictions_total{labels}"] == beat["predictions"] > 0
        assert metrics[f"loopline_stream_model_version{labels}"] == version
        assert metrics[f"loopline_stream_latency_seconds_count{labels}"] == beat["predictions"]
        assert metrics["process_cpu_seconds_total"] > 0  # what the replica costs, scraped
    finally:
        second.send_signal(signal.SIGTERM)  # drains: produce, commit, close
        assert second.wait(timeout=60) == 0
    beat = json.loads(heartbeat_path(tmp_path, DEMO.name, 0).read_text())
    assert beat["state"] == "stopped"
    # Its cost, period by period (a second each here), adds up to what it consumed.
    minutes = [
        record
        for record in RecordStore(store, DEMO.data.bucket).records(DEMO.name, RecordStage.COST)
        if record.dag_id == f"{DEMO.name}.stream" and record.payload["model_version"] == version
    ]
    assert len(minutes) >= 2 and len({record.run_id for record in minutes}) == 1
    assert sum(record.numbers["rows_in"] for record in minutes) == beat["events"]
    assert sum(record.numbers["rows_out"] for record in minutes) == beat["predictions"]
    assert sum(record.numbers["cpu_seconds"] for record in minutes) > 0
    assert sum(record.numbers["kafka_bytes_read"] for record in minutes) > 0
    # ...and `loopline cost` shows what a replica costs per minute.
    for name, value in s3.cli_environment().items():
        monkeypatch.setenv(name, value)
    from loopline.cli import main

    capsys.readouterr()
    assert main(["--project", str(PROJECT_ROOT), "cost", DEMO.name]) == 0
    out = capsys.readouterr().out
    assert "streaming replicas:" in out and "per replica-minute" in out
    per_stage = out.split("per stage\n", 1)[1].split("\n\n", 1)[0]
    [stream] = [line for line in per_stage.splitlines() if line.startswith("stream ")]
    # Rows in: every event it consumed (other tests' replicas may share this S3 server).
    assert int(stream.split()[-3].replace(",", "")) >= beat["events"]
    assert group_lag(broker.bootstrap, streaming.consumer_group, streaming.input_topic).total == 0
    assert np.isfinite(beat["latency_ms"]["p99"])


def wait_counted(state: Path, timeout: float = 30) -> dict:
    """The heartbeat once it counts a quiet replica's last batch (it beats every 2 s)."""
    path = heartbeat_path(state, DEMO.name, 0)
    previous, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        beat = json.loads(path.read_text())
        quiet = previous and beat["predictions"] == previous["predictions"]
        if quiet and beat["updated_at"] > previous["updated_at"]:
            return beat
        previous = beat
        time.sleep(2.5)
    raise AssertionError("the replica kept counting")


def scrape(url: str) -> dict[str, float]:
    """A Prometheus text page as {series: value} (at this host: the URL names its hostname)."""
    local = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
    with urllib.request.urlopen(local, timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {
        series: float(value)
        for line in lines
        if line and not line.startswith("#")
        for series, value in [line.rsplit(" ", 1)]
    }


def test_a_running_replica_switches_versions_in_place_and_keeps_serving_if_one_fails(
    broker, s3, tmp_path
) -> None:
    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=3000)
    v1 = crown_champion(store)
    v2 = crown_champion(store)
    streaming = DEMO.streaming
    version_file = tmp_path / "slot-0.json"
    version_file.write_text(json.dumps({"version": v1}))
    replica = start_replica(broker, s3, v1, tmp_path, version_file=version_file)
    try:
        first = wait_running(tmp_path, replica)
        assert first["model_version"] == v1

        version_file.write_text(json.dumps({"version": v2}))
        switched = wait_beat(tmp_path, lambda beat: beat["model_version"] == v2)
        assert switched["pid"] == replica.pid and switched["state"] == "running"  # no restart
        assert switched["assigned"] == first["assigned"]  # it kept its partitions
        events = feature_events(DEMO, 200, seed=21, prefix="sw")
        produce(broker.bootstrap, streaming.input_topic, as_records(events))
        predictions = read_topic(
            broker.bootstrap, streaming.output_topic, until=0, timeout=60, ids=set(events)
        )
        assert {p["model_version"] for p in predictions if p["event_id"] in events} == {v2}

        version_file.write_text(json.dumps({"version": 99}))  # not in the registry
        failed = wait_beat(tmp_path, lambda beat: beat.get("switch_failed"))
        assert failed["switch_failed"]["version"] == 99 and failed["model_version"] == v2
        assert replica.poll() is None and failed["state"] == "running"  # still serving v2
    finally:
        replica.send_signal(signal.SIGTERM)
        assert replica.wait(timeout=60) == 0


def wait_beat(state: Path, check, timeout: float = 120) -> dict:
    path = heartbeat_path(state, DEMO.name, 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beat = json.loads(path.read_text())
        if check(beat):
            return beat
        time.sleep(0.3)
    raise AssertionError(f"the heartbeat never showed it: {path.read_text()}")
