"""Dead letters replayed on the real broker: a replica dead-letters the events its model
fails on, the model is fixed, the replay sends each back once (byte-identical, keyed as
before), a replica scores them, and no event is scored twice: a second replay passes over what
the first settled, and a letter of an event already scored is reported, not replayed."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from kafka import KafkaConsumer
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.streaming.consumer import Replica, ScoringConsumer
from loopline.streaming.replay import REPLAY_OF_HEADER, replay_dead_letters
from support import streams
from support.streams import as_records, feature_events, produce, read_topic, run_until
from support.validated_data import demo_bucket


def broken_on(amounts: set[float]):
    """A model that fails on rows with these amounts (the bug the replay comes after)."""

    def score(table: pa.Table) -> np.ndarray:
        column = table.column("amount").to_numpy().astype(np.float64)
        if any(float(np.float32(a)) in amounts for a in column):
            raise ValueError("model bug")
        return 1 / (1 + np.exp(-column / 100))

    return score


def input_records(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=3000,
    )  # fmt: skip
    try:
        return list(consumer)
    finally:
        consumer.close()


def test_dead_letters_are_replayed_once_after_the_fix(kafka_broker, s3, tmp_path) -> None:
    bootstrap = kafka_broker.bootstrap
    spec = streams.streaming_spec("replayed", partitions=2)
    streaming = spec.streaming
    events = feature_events(spec, 60, seed=5, prefix="rp")
    poisoned = list(events)[:10]
    produce(bootstrap, streaming.input_topic, as_records(events))
    amounts = {float(np.float32(events[i]["amount"])) for i in poisoned}
    replica = Replica(spec.name, 0, 7, bootstrap, tmp_path)
    first = ScoringConsumer(spec, replica, broken_on(amounts))
    assert run_until(first, lambda: first.stats.events >= 60) == []
    assert first.stats.dead_lettered == 10
    letters = read_topic(bootstrap, streaming.dead_letters, until=10)
    assert all(letter["value_b64"] for letter in letters)  # the exact bytes, kept
    records = RecordStore(demo_bucket(s3), spec.data.bucket)

    replay = replay_dead_letters(bootstrap, spec, RunContext(spec.name, "r1"), records)

    assert replay.verdict == "replayed" and replay.numbers["read"] == 10
    assert sorted(letter.original.event_id for letter in replay.replayed) == sorted(poisoned)
    resent = [r for r in input_records(bootstrap, streaming.input_topic) if r.headers]
    assert {r.key.decode() for r in resent} == set(poisoned)
    assert all(r.value == as_records({r.key.decode(): events[r.key.decode()]})[0][1]
               for r in resent)  # fmt: skip
    assert all(dict(r.headers)[REPLAY_OF_HEADER].startswith(streaming.dead_letters.encode())
               for r in resent)  # fmt: skip

    fixed = ScoringConsumer(spec, replica, broken_on(set()))  # the model, fixed
    assert run_until(fixed, lambda: fixed.stats.events >= 10) == []
    predictions = read_topic(bootstrap, streaming.output_topic, until=60, ids=set(events))
    assert sorted(p["event_id"] for p in predictions) == sorted(events)  # each once

    again = replay_dead_letters(bootstrap, spec, RunContext(spec.name, "r2"), records)
    assert (again.verdict, again.numbers["read"], again.settled_before) == (
        "nothing_replayed", 0, 10,
    )  # fmt: skip

    # A letter of an event the output topic already scored: reported, not sent again.
    scored_id = list(events)[30]
    letter = {"reason": "scoring failed", "value": "{}", "value_b64": "e30="}
    produce(bootstrap, streaming.dead_letters, [(scored_id.encode(), json.dumps(letter).encode())])
    third = replay_dead_letters(bootstrap, spec, RunContext(spec.name, "r3"), records)
    assert third.numbers["already_scored"] == 1 and third.numbers["replayed"] == 0
    assert third.numbers["predictions_scanned"] >= 60
    assert any(scored_id in reason for reason in third.reasons())

    verdicts = [r.verdict for r in records.records(spec.name, RecordStage.REPLAY)]
    assert verdicts == ["replayed", "nothing_replayed", "nothing_replayed"]


def test_a_replay_without_an_input_topic_is_refused_and_recorded(kafka_broker, s3) -> None:
    spec = streams.streaming_spec("never-deployed")
    records = RecordStore(demo_bucket(s3), spec.data.bucket)

    replay = replay_dead_letters(kafka_broker.bootstrap, spec, RunContext(spec.name, "r1"), records)

    assert replay.verdict == "refused"
    assert replay.refused and replay.refused.startswith("no input topic never-deployed.in")
    [record] = records.records(spec.name, RecordStage.REPLAY)
    assert record.verdict == "refused" and record.reasons == [replay.refused]
