"""A scoring replica against the real local broker: every event scored, poison to the
dead-letter topic with its reason while the consumer stays up, offsets committed only after
the predictions, and a drain on stop that leaves nothing uncommitted."""

from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa
import pytest
from loopline.streaming.consumer import Replica, ScoringConsumer
from loopline.streaming.lag import group_lag
from support import streams
from support.streams import as_records, feature_events, produce, read_topic, run_until

POISON = {
    b"not json {": "not JSON: ",
    b"\xff\xfe not utf-8": "not UTF-8: ",
    b"[1, 2, 3]": "not a JSON object: a list",
}


def streaming_spec(name: str, exactly_once: bool = False):
    return streams.streaming_spec(name, partitions=2, exactly_once=exactly_once)


def amount_scores(table: pa.Table) -> np.ndarray:
    """A stand-in model: a fixed function of the features (the real one runs in the
    process tests)."""
    amount = table.column("amount").to_numpy().astype(np.float64)
    return 1 / (1 + np.exp(-amount / 100))


def test_every_event_is_scored_and_poison_is_dead_lettered_with_its_reason(
    kafka_broker, tmp_path
) -> None:
    spec = streaming_spec("scored")
    events = feature_events(spec, 400, seed=1, prefix="ev")
    missing = dict(next(iter(events.values())))
    missing.pop("amount")
    mistyped = {**missing, "amount": "12.5 EUR"}
    nulled = {**missing, "amount": None}
    poison = [
        *((f"bad-{i}".encode(), value) for i, value in enumerate(POISON)),
        (b"missing", json.dumps(missing).encode()),
        (b"mistyped", json.dumps(mistyped).encode()),
        (b"nulled", json.dumps(nulled).encode()),
        (b"huge", b'{"pad": "' + b"x" * 70_000 + b'"}'),
    ]
    produce(
        kafka_broker.bootstrap,
        spec.streaming.input_topic,
        [*as_records(events)[:200], *poison, *as_records(events)[200:]],
    )
    replica = Replica(spec.name, 0, 7, kafka_broker.bootstrap, tmp_path)
    consumer = ScoringConsumer(spec, replica, amount_scores)

    run_until(consumer, lambda: consumer.stats.events >= 400 + len(poison))

    predictions = read_topic(kafka_broker.bootstrap, spec.streaming.output_topic, until=400)
    assert sorted(p["event_id"] for p in predictions) == sorted(events)
    by_id = {p["event_id"]: p for p in predictions}
    rows = pa.Table.from_pylist(list(events.values()))
    expected = dict(zip(events, amount_scores(rows), strict=True))
    assert all(by_id[i]["score"] == pytest.approx(expected[i], rel=1e-6) for i in events)
    assert {p["model_version"] for p in predictions} == {7}
    assert all(p["latency_ms"] >= 0 for p in predictions)
    # Each prediction names where its event was read, so `loopline trace` can find it: one
    # place per event, on the input topic.
    inputs = {p["event_id"]: p["input"] for p in predictions}
    assert {i["topic"] for i in inputs.values()} == {spec.streaming.input_topic}
    assert len({(i["partition"], i["offset"]) for i in inputs.values()}) == len(events)
    assert all(i["offset"] >= 0 and i["timestamp_ms"] > 0 for i in inputs.values())

    letters = read_topic(kafka_broker.bootstrap, spec.streaming.dead_letters, until=len(poison))
    reasons = {letter["key"]: letter["reason"] for letter in letters}
    assert len(letters) == len(poison)
    for i, start in enumerate(POISON.values()):
        assert reasons[f"bad-{i}"].startswith(start), reasons
    assert reasons["missing"] == "missing feature 'amount'"
    assert reasons["mistyped"] == "'amount' is not a number: str '12.5 EUR'"
    assert reasons["nulled"] == "'amount' is null"
    assert reasons["huge"].startswith("oversized: 70,011 bytes > streaming.max_event_bytes")
    assert all(letter["_headers"]["loopline-reason"] for letter in letters)

    # Everything consumed was committed: nothing waits for the group.
    assert (
        group_lag(
            kafka_broker.bootstrap, spec.streaming.consumer_group, spec.streaming.input_topic
        ).total
        == 0
    )
    beat = json.loads(replica.heartbeat_path.read_text())
    assert beat["state"] == "stopped" and beat["events"] == 400 + len(poison)
    assert beat["dead_lettered"] == len(poison) and beat["model_version"] == 7


def test_a_failed_scoring_commits_nothing_and_the_events_come_back(kafka_broker, tmp_path) -> None:
    spec = streaming_spec("crashy")
    events = feature_events(spec, 50, seed=2, prefix="c")
    produce(kafka_broker.bootstrap, spec.streaming.input_topic, as_records(events))

    def broken(table: pa.Table) -> np.ndarray:
        raise RuntimeError("the model failed")

    consumer = ScoringConsumer(
        spec, Replica(spec.name, 0, 1, kafka_broker.bootstrap, tmp_path), broken
    )
    stop = threading.Event()
    with pytest.raises(RuntimeError, match="the model failed"):
        consumer.run(stop)
    consumer.close()
    lag = group_lag(
        kafka_broker.bootstrap, spec.streaming.consumer_group, spec.streaming.input_topic
    )
    assert lag.total == 50  # nothing committed: a replacement scores them all

    again = ScoringConsumer(
        spec, Replica(spec.name, 0, 1, kafka_broker.bootstrap, tmp_path), amount_scores
    )
    run_until(again, lambda: again.stats.events >= 50)
    predictions = read_topic(kafka_broker.bootstrap, spec.streaming.output_topic, until=50)
    assert sorted(p["event_id"] for p in predictions) == sorted(events)


def test_exactly_once_commits_predictions_and_offsets_together(kafka_broker, tmp_path) -> None:
    spec = streaming_spec("once", exactly_once=True)
    events = feature_events(spec, 120, seed=3, prefix="x")
    produce(kafka_broker.bootstrap, spec.streaming.input_topic, as_records(events))
    consumer = ScoringConsumer(
        spec, Replica(spec.name, 0, 2, kafka_broker.bootstrap, tmp_path), amount_scores
    )

    run_until(consumer, lambda: consumer.stats.events >= 120)

    predictions = read_topic(kafka_broker.bootstrap, spec.streaming.output_topic, until=120)
    assert sorted(p["event_id"] for p in predictions) == sorted(events)  # each exactly once
    assert (
        group_lag(
            kafka_broker.bootstrap, spec.streaming.consumer_group, spec.streaming.input_topic
        ).total
        == 0
    )
