"""Streaming scoring on the local broker: latency at fixed rates, and maximum throughput.

Contenders, same broker (Tansu, in memory), same client settings, same run:
- candidate: the scoring replica (``ScoringConsumer``) with a real Keras MLP, micro-batched;
- floor: the same replica loop forwarding each event with a constant score (no model): what
  the broker, the client, parsing, producing and committing cost;
- one at a time: the scoring replica with ``max_batch_size = 1`` (throughput only).
Load: a separate process produces ~600-byte JSON events at a fixed rate (kafka-python,
``linger_ms=5``) for a bounded time; latency is the event's record timestamp to the broker's
acknowledgement of its prediction (the replica's own measure, over every event after warm-up).
Goals (the issue's): scoring adds <= 10 ms to p50 and <= 25% to p99 over the floor at each rate;
max throughput >= 0.8x the floor's and >= 40x one at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import Comparison

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

# LOOPLINE_BENCH_RATES=1000 to measure one rate
RATES = tuple(int(r) for r in os.environ.get("LOOPLINE_BENCH_RATES", "200,1000,5000").split(","))
SECONDS = 15
WARMUP_SECONDS = 3
THROUGHPUT_EVENTS = 20_000
ONE_AT_A_TIME_EVENTS = 1_000

LOAD = """
import json, sys, time
from kafka import KafkaProducer
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
bootstrap, topic, spec_path = sys.argv[1], sys.argv[2], sys.argv[5]
rate, seconds = float(sys.argv[3]), float(sys.argv[4])
prefix = sys.argv[6] if len(sys.argv) > 6 else "e"
spec = load_spec(spec_path)
rows = generate(min(int(rate * seconds), 50_000), seed=1)
rows = rows.select(spec.model.features.all).to_pylist()
values = [json.dumps(row).encode() for row in rows]
producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
started = time.perf_counter()
for i in range(int(rate * seconds)):
    due = started + i / rate
    pause = due - time.perf_counter()
    if pause > 0:
        time.sleep(pause)
    producer.send(topic, key=f"{prefix}{i}".encode(), value=values[i % len(values)])
producer.flush()
"""


def run() -> list[Comparison]:
    from support.servers import KafkaBroker

    spec = _spec()
    scorer = _model_scorer(spec)
    floor = _constant_scorer
    comparisons = []
    with KafkaBroker.start() as broker:
        for rate in RATES:
            stats = {}
            for name, score in (("floor", floor), ("scoring", scorer)):
                stats[name] = _at_rate(broker, spec, name, score, rate)
            comparisons.append(_latency_comparison(rate, stats["scoring"], stats["floor"]))
        rates = {
            "floor": _throughput(broker, spec, "tp-floor", floor, THROUGHPUT_EVENTS, 256),
            "scoring": _throughput(broker, spec, "tp-scoring", scorer, THROUGHPUT_EVENTS, 256),
            "one": _throughput(broker, spec, "tp-one", scorer, ONE_AT_A_TIME_EVENTS, 1),
        }
    note = (
        f"max throughput: scoring {rates['scoring']:,.0f} events/s, floor {rates['floor']:,.0f}"
        f" ({rates['scoring'] / rates['floor']:.2f}x, goal >= 0.8), one at a time "
        f"{rates['one']:,.0f} ({rates['scoring'] / rates['one']:.0f}x, goal >= 40)"
    )
    comparisons.append(
        Comparison(
            "streaming",
            "max throughput, micro-batched",
            "floor (no model)",
            [1 / rates["scoring"]],
            [1 / rates["floor"]],
            note,
        )
    )
    return comparisons


def _spec():
    from loopline.spec import load_spec

    spec = load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
    return spec


def _model_scorer(spec):
    from loopline.demo.card_transactions import generate
    from loopline.serving.artifacts import compiled
    from loopline.serving.inputs import served_scores
    from loopline.training.trainer import train_model

    outcome = train_model(generate(20_000, seed=3), spec.model, spec.training, epochs=1)
    serve = compiled(outcome.model)
    return lambda table: served_scores(serve, table, spec.model)


def _constant_scorer(table):
    return np.full(table.num_rows, 0.5)


def _streaming_spec(spec, name: str, batch: int):
    streaming = spec.streaming.model_copy(
        update={
            "input_topic": f"bench.{name}.in",
            "output_topic": f"bench.{name}.out",
            "consumer_group": f"bench-{name}",
            "max_batch_size": batch,
        }
    )
    return spec.model_copy(update={"streaming": streaming})


def _consumer(broker, spec, name: str, scorer, batch: int):
    import tempfile

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from loopline.streaming.consumer import Replica, ScoringConsumer

    local = _streaming_spec(spec, name, batch)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(local.streaming.input_topic, local.streaming.partitions, 1)])
    admin.close()
    replica = Replica(local.name, 0, 1, broker.bootstrap, Path(tempfile.mkdtemp()))
    return local, ScoringConsumer(local, replica, scorer)


def _at_rate(broker, spec, contender: str, scorer, rate: int):
    local, consumer = _consumer(broker, spec, f"{contender}-{rate}", scorer, 256)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    while not consumer.consumer.assignment():  # joined: the load starts now
        time.sleep(0.1)
    load_started = time.time()
    subprocess.run(
        [sys.executable, "-c", LOAD, broker.bootstrap, local.streaming.input_topic, str(rate),
         str(SECONDS), str(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")],
        check=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    load_ended, expected = time.monotonic(), rate * SECONDS
    deadline = load_ended + 60
    while consumer.stats.events < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    behind = time.monotonic() - load_ended  # > a second or so: it did not keep up
    stop.set()
    thread.join(timeout=30)
    consumer.close()
    warm = load_started + WARMUP_SECONDS
    after_warmup = [latency for at, latency in consumer.stats.latencies_ms if at > warm]
    return {
        "events": consumer.stats.events,
        "latencies": np.asarray(after_warmup),
        "behind_s": behind,
    }


def _latency_comparison(rate: int, scoring: dict, floor: dict) -> Comparison:
    p = {
        name: (np.percentile(s["latencies"], 50), np.percentile(s["latencies"], 99))
        for name, s in (("scoring", scoring), ("floor", floor))
    }
    added_p50 = p["scoring"][0] - p["floor"][0]
    p99_ratio = p["scoring"][1] / p["floor"][1]
    note = (
        f"{rate} events/s for {SECONDS} s: scoring p50 {p['scoring'][0]:.1f} ms, p99 "
        f"{p['scoring'][1]:.1f} ms; floor p50 {p['floor'][0]:.1f} ms, p99 {p['floor'][1]:.1f} ms; "
        f"scoring adds {added_p50:+.1f} ms to p50 (goal <= 10) and {100 * (p99_ratio - 1):+.0f}% "
        f"to p99 (goal <= 25%); events scored {scoring['events']}, forwarded {floor['events']}; "
        f"done {scoring['behind_s']:.1f} s / {floor['behind_s']:.1f} s after the load ended "
        "(more than ~1 s: not sustained)"
    )
    return Comparison(
        "streaming",
        f"scoring p99 at {rate}/s",
        "floor p99",
        [p["scoring"][1] / 1000],
        [p["floor"][1] / 1000],
        note,
    )


def _throughput(broker, spec, name: str, scorer, events: int, batch: int) -> float:
    """Events per second a replica drains from a topic already holding `events`."""
    from support.streams import produce

    local, consumer = _consumer(broker, spec, name, scorer, batch)
    rows = _events(spec, events)
    produce(broker.bootstrap, local.streaming.input_topic, rows)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    while consumer.stats.events == 0:
        time.sleep(0.01)
    started, first = time.perf_counter(), consumer.stats.events
    deadline = time.monotonic() + 300
    while consumer.stats.events < events and time.monotonic() < deadline:
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    done = consumer.stats.events - first
    stop.set()
    thread.join(timeout=30)
    consumer.close()
    return done / seconds


def _events(spec, count: int):
    from support.streams import as_records, feature_events

    return as_records(feature_events(spec, count, seed=2, prefix="t"))
