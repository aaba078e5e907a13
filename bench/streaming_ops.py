"""Streaming operations under load, with real replica processes (a Keras champion from the
registry on local S3, the local broker): a rolling update and a ``kill -9``, each at 1,000
events/s, against the floor measured in the same run.

- floor: the pass-through consumer (no model) at the same rate, same broker and settings;
- steady: two replica processes before anything happens;
- roll: the same two rolled to a new version mid-stream (``deploy``: one slot at a time, each
  healthy before the next); p99 of the events made while it ran. Goal: <= 2x the floor's p99;
- kill -9: one of the two killed mid-stream. "Lag drained": the group hands its partitions to
  the survivor (after the session timeout) and the backlog is scored: the time from the kill
  until events are on time again (within 2x the steady p99, at least 250 ms) for 5 s.
  "Replica back": from the kill to a new replica in the slot reporting running (its supervisor
  restarts it at once; the monitor is the backstop for a slot killed whole). Goal: recovery
  <= 30 s.
Latency everywhere: the event's record timestamp to its prediction's (both stamped by their
producers), read back from the output topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Comparison
from bench.streaming import LOAD, PROJECT_ROOT, SECONDS, _at_rate, _constant_scorer

RATE = 1000
ROLL_LOAD_SECONDS = 30
KILL_LOAD_SECONDS = 45
EVENT_AT = 10.0  # seconds into the load when the roll starts or a replica dies
WARMUP_SECONDS = 3.0
SPEC_PATH = PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml"
# As the local stack's kafka_default connection sets it (airflow_settings.yaml): the local
# broker answers a JoinGroup after half the session timeout.
SESSION_TIMEOUT_MS = int(os.environ.get("LOOPLINE_BENCH_SESSION_TIMEOUT_MS", "2000"))


def run() -> list[Comparison]:
    from loopline.spec import load_spec
    from loopline.storage.objects import ObjectStore
    from support.batch_world import crown_champion, land_validated
    from support.servers import KafkaBroker, S3Server

    with S3Server.start() as s3, KafkaBroker.start() as broker:
        store = ObjectStore(s3.client())
        land_validated(store, objects=1, rows=3000)
        v1, v2 = crown_champion(store), crown_champion(store)
        _at_rate(broker, load_spec(SPEC_PATH), "opsfloor", _constant_scorer, RATE)
        floor = _latencies(broker, f"bench.opsfloor-{RATE}.out", "e", RATE * SECONDS)
        floor_p99 = np.percentile(floor.latency[floor.created > floor.created.min() + 3000], 99)
        # Each phase on fresh topics, as the floor: the local broker's in-memory topics get
        # slower as they grow (p99 per second rose from ~55 ms to ~250 ms over 70,000 events).
        roll = _phase("roll", broker, s3, v1, lambda spec, d: _roll(broker, spec, d, v2))
        kill = _phase("kill", broker, s3, v2, lambda spec, d: _kill(broker, spec, d, v2))
    return [_roll_comparison(roll, floor_p99), _kill_comparison(kill, floor_p99)]


def _phase(name: str, broker, s3, version: int, measure):
    """`measure(spec, deployment)` with two replicas of `version` on topics of their own."""
    from loopline.spec import load_spec

    spec_path = _phase_spec(name)
    spec = load_spec(spec_path)
    deployment = _deployment(spec, spec_path, broker, s3)
    try:
        assert deployment.deploy(version, 2).verdict == "done"
        return measure(spec, deployment)
    finally:
        deployment.stop()


def _phase_spec(name: str) -> Path:
    import yaml

    document = yaml.safe_load(SPEC_PATH.read_text())
    streaming = document["streaming"]
    streaming["input_topic"] = f"{streaming['input_topic']}.{name}"
    streaming["output_topic"] = f"{streaming['output_topic']}.{name}"
    streaming["consumer_group"] = f"{streaming['consumer_group']}-{name}"
    path = Path(tempfile.mkdtemp()) / SPEC_PATH.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class Latencies:
    """Per prediction: when its event was made and its latency (ms), from the output topic."""

    def __init__(self, created: list[float], latency: list[float]) -> None:
        order = np.argsort(created)
        self.created = np.asarray(created)[order]
        self.latency = np.asarray(latency)[order]

    def between(self, start_ms: float, end_ms: float) -> np.ndarray:
        return self.latency[(self.created >= start_ms) & (self.created < end_ms)]


def _latencies(broker, topic: str, prefix: str, expected: int) -> Latencies:
    """The first prediction of each event whose id starts with `prefix`."""
    import json

    from kafka import KafkaConsumer

    reader = KafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, fetch_max_wait_ms=100,
    )  # fmt: skip
    first: dict[str, tuple[float, float]] = {}  # event id -> (created, latency)
    deadline = time.monotonic() + 180
    try:
        while len(first) < expected and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=200).values():
                for record in batch:
                    key = record.key.decode()
                    if key.startswith(prefix) and key not in first:
                        latency = json.loads(record.value)["latency_ms"]
                        first[key] = (record.timestamp - latency, latency)
    finally:
        reader.close()
    if len(first) < expected:
        raise AssertionError(f"{topic}: {len(first)} of {expected} predictions")
    created, latency = zip(*first.values(), strict=True)
    return Latencies(list(created), list(latency))


def _deployment(spec, spec_path: Path, broker, s3):
    from loopline.stack.config import S3_ACCESS_KEY, S3_SECRET_KEY
    from loopline.storage.settings import S3Settings
    from loopline.streaming.deployment import SlotDeployment
    from loopline.streaming.local_backend import LocalProcessBackend
    from loopline.streaming.topics import ensure_topics

    ensure_topics(broker.bootstrap, [spec.streaming])
    settings = S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json()
    backend = LocalProcessBackend(
        spec.name, spec_path, broker.bootstrap, Path(tempfile.mkdtemp()), settings,
        spec.streaming.consumer_group, metrics=False, session_timeout_ms=SESSION_TIMEOUT_MS,
    )  # fmt: skip
    return SlotDeployment(backend)


def _load(broker, spec, seconds: float, prefix: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LOAD, broker.bootstrap, spec.streaming.input_topic, str(RATE),
         str(seconds), str(SPEC_PATH), prefix],  # SPEC_PATH: only its feature names
        cwd=PROJECT_ROOT,
    )  # fmt: skip


def _roll(broker, spec, deployment, version: int) -> dict:
    started = time.time() * 1000
    load = _load(broker, spec, ROLL_LOAD_SECONDS, "roll")
    time.sleep(EVENT_AT)
    roll_start = time.time() * 1000
    outcome = deployment.deploy(version, 2)
    roll_end = time.time() * 1000
    assert load.wait() == 0 and outcome.verdict == "done", outcome
    seen = _latencies(broker, spec.streaming.output_topic, "roll", RATE * ROLL_LOAD_SECONDS)
    _save_timeline(
        "roll", seen, roll_start, {"steps": outcome.steps, "end_s": (roll_end - roll_start) / 1000}
    )
    return {
        "steady": seen.between(started + WARMUP_SECONDS * 1000, roll_start),
        "roll": seen.between(roll_start, roll_end),
        "roll_seconds": (roll_end - roll_start) / 1000,
    }


def _save_timeline(name: str, seen: Latencies, zero_ms: float, extra: dict) -> None:
    """Per second of event time around `zero_ms`: events and their worst latency (a picture of
    where the time went), beside the results."""
    import json

    seconds = np.floor((seen.created - zero_ms) / 1000).astype(int)
    timeline = [
        {"second": int(t), "events": int((seconds == t).sum()),
         "max_ms": float(seen.latency[seconds == t].max())}
        for t in np.unique(seconds)
    ]  # fmt: skip
    path = PROJECT_ROOT / "bench" / "results" / f"streaming_ops_{name}_timeline.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**extra, "timeline": timeline}, indent=1))


def _kill(broker, spec, deployment, version: int) -> dict:
    started = time.time() * 1000
    load = _load(broker, spec, KILL_LOAD_SECONDS, "kill")
    time.sleep(EVENT_AT)
    victim = deployment.backend.status(1).heartbeat["pid"]
    killed_at = time.time() * 1000
    os.kill(victim, signal.SIGKILL)
    back_at = None
    while back_at is None and load.poll() is None:  # its supervisor restarts it
        beat = deployment.backend.status(1).heartbeat
        if beat.get("pid") not in (None, victim) and beat.get("state") == "running":
            back_at = time.time() * 1000
        time.sleep(0.1)
    assert load.wait() == 0
    seen = _latencies(broker, spec.streaming.output_topic, "kill", RATE * KILL_LOAD_SECONDS)
    steady = seen.between(started + WARMUP_SECONDS * 1000, killed_at)
    late_ms = max(2 * np.percentile(steady, 99), 250.0)
    after = seen.created >= killed_at - 1000
    drained_at = _back_on_time(seen, killed_at, late_ms)
    _save_timeline(
        "kill", seen, killed_at, {"back_s": (back_at - killed_at) / 1000 if back_at else None}
    )
    return {
        "steady": steady,
        "late_ms": late_ms,
        "drained_s": (drained_at - killed_at) / 1000,
        "back_s": (back_at - killed_at) / 1000 if back_at else float("nan"),
        "worst_ms": seen.latency[after].max(),
    }


def _back_on_time(seen: Latencies, since_ms: float, late_ms: float, hold_s: float = 5) -> float:
    """When events made after `since_ms` were scored on time again (within `late_ms`) and
    stayed so for `hold_s`: the backlog is gone."""
    made = seen.created >= since_ms
    created, late = seen.created[made], seen.latency[made] > late_ms
    for start in np.arange(since_ms, created.max() - hold_s * 1000, 100.0):
        window = (created >= start) & (created < start + hold_s * 1000)
        if window.any() and not late[window].any():
            return float(start)
    return float("nan")


def _roll_comparison(roll: dict, floor_p99: float) -> Comparison:
    steady, during = np.percentile(roll["steady"], 99), np.percentile(roll["roll"], 99)
    note = (
        f"{RATE}/s, 2 replicas: p99 during the roll ({roll['roll_seconds']:.0f} s, one slot at a "
        f"time) {during:.0f} ms = {during / floor_p99:.2f}x the floor's {floor_p99:.0f} ms "
        f"(goal <= 2x); before it {steady:.0f} ms"
    )
    return Comparison(
        "streaming_ops", "p99 during a rolling update", "floor p99", [during / 1000],
        [floor_p99 / 1000], note,
    )  # fmt: skip


def _kill_comparison(kill: dict, floor_p99: float) -> Comparison:
    note = (
        f"{RATE}/s, 2 replicas, one killed (-9): lag drained {kill['drained_s']:.1f} s after "
        f"(events later than {kill['late_ms']:.0f} ms until then; worst {kill['worst_ms']:.0f} ms;"
        f" goal <= 30 s); replica back {kill['back_s']:.1f} s after (restarted by its supervisor); "
        f"steady p99 {np.percentile(kill['steady'], 99):.0f} ms, floor {floor_p99:.0f} ms"
    )
    return Comparison(
        "streaming_ops", "kill -9: until the lag drained", "floor p99", [kill["drained_s"]],
        [floor_p99 / 1000], note,
    )  # fmt: skip
