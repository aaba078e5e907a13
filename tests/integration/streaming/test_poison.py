"""Hostile producers against a replica on the real broker: no event, and no batch, stops it.

Each value here stopped the consumer group before (the replica raised, its supervisor
restarted it into the same batch, and the partition moved on to the next replica): nesting
deeper than Python's recursion limit, an integer of more than 4,300 digits, an integer too
large for a float, a lone surrogate in a category, a model that raises on one row or scores
it NaN. An integer above 2^24 in a float32 feature (an amount in cents) is now coerced as
batch scoring coerces it, and scored. A replica process that dies on a record (a native
crash, the OOM killer) dies at most twice on it: the third time the record is dead-lettered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from loopline.runtime.supervise import read_status
from loopline.streaming.consumer import Replica, ScoringConsumer, heartbeat_path
from loopline.streaming.lag import group_lag
from support import streams
from support.streams import as_records, feature_events, produce, read_topic, run_until
from support.validated_data import DEMO

RAISES_ON, NAN_ON = 666.0, 777.0


def streaming_spec(name: str):
    """One replica: the killed replica's record comes back to it. (The broker creates the
    topic on first use with its own default, 4 partitions; the one replica holds them all.)"""
    one = DEMO.streaming.replicas.model_copy(update={"min": 1, "max": 1})
    return streams.streaming_spec(name, partitions=1, replicas=one, session_timeout_ms=2000)


def picky_scores(table: pa.Table) -> np.ndarray:
    """A model that raises on one amount and scores another NaN, anywhere in a batch."""
    amount = table.column("amount").to_numpy().astype(np.float64)
    if (amount == RAISES_ON).any():
        raise ValueError("this model cannot score 666")
    return np.where(amount == NAN_ON, np.nan, 1 / (1 + np.exp(-amount / 100)))


def hostile_events(good: dict) -> dict[bytes, tuple[bytes, str | None]]:
    """key -> (value, the dead letter's reason prefix; None: scored)."""

    def event(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    digits = "9" * 5000
    return {
        b"deep": (b'{"amount": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "not JSON we can read"),
        b"digits": (event(amount=0)[:-1] + f', "v1": {digits}}}'.encode(), "not JSON"),
        b"huge-int": (event(amount=10**400), "'amount' is too large for a number"),
        b"beyond-f32": (event(amount=1e39), "'amount' = 1e+39 is beyond float32's range"),
        b"surrogate": (event()[:-1] + b', "channel": "\\ud800"}', "'channel' holds a lone"),
        b"raises": (event(amount=RAISES_ON), "scoring failed: ValueError: this model cannot"),
        b"nan-score": (event(amount=NAN_ON), "the model scored it nan"),
        b"cents": (event(amount=2**24 + 1), None),  # coerced to float32, as batch does
    }


def test_hostile_events_become_dead_letters_and_every_other_event_is_scored(
    kafka_broker, tmp_path
) -> None:
    spec = streaming_spec("hostile")
    events = feature_events(spec, 300, seed=3, prefix="ev")
    hostile = hostile_events(next(iter(events.values())))
    records = as_records(events)
    produce(
        kafka_broker.bootstrap,
        spec.streaming.input_topic,
        [*records[:100], *((k, v) for k, (v, _) in hostile.items()), *records[100:]],
    )
    consumer = ScoringConsumer(spec, Replica(spec.name, 0, 1, kafka_broker.bootstrap, tmp_path),
                               picky_scores)  # fmt: skip

    errors = run_until(consumer, lambda: consumer.stats.events >= 300 + len(hostile))

    assert errors == []
    scored_ids = {*events, "cents"}
    predictions = read_topic(kafka_broker.bootstrap, spec.streaming.output_topic, until=301)
    assert {p["event_id"] for p in predictions} == scored_ids
    cents = next(p for p in predictions if p["event_id"] == "cents")
    assert cents["score"] == pytest.approx(1.0)  # 16,777,217 cents: a sure score, not an error
    letters = read_topic(
        kafka_broker.bootstrap, spec.streaming.dead_letters, until=len(hostile) - 1
    )
    reasons = {letter["key"]: letter["reason"] for letter in letters}
    for key, (_, reason) in hostile.items():
        if reason is not None:
            assert reasons[key.decode()].startswith(reason), reasons[key.decode()]
    assert len(letters) == len(hostile) - 1
    lag = group_lag(
        kafka_broker.bootstrap, spec.streaming.consumer_group, spec.streaming.input_topic
    )
    assert lag.total == 0


# A replica process whose "model" kills the process (as a segfault or the OOM killer would)
# on one amount, run under the real supervisor.
CRASHING_REPLICA = textwrap.dedent(
    """
    import logging, os, signal, sys, threading
    from pathlib import Path
    import numpy as np
    from loopline.spec.sections import PipelineSpec
    from loopline.streaming.consumer import Replica, ScoringConsumer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
    spec = PipelineSpec.model_validate_json(Path(sys.argv[1]).read_text())
    bootstrap, state = sys.argv[2], Path(sys.argv[3])

    def scores(table):
        amount = table.column("amount").to_numpy()
        if (amount == 666.0).any():
            os.kill(os.getpid(), signal.SIGKILL)
        return 1 / (1 + np.exp(-amount.astype(np.float64) / 100))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = ScoringConsumer(spec, Replica(spec.name, 0, 1, bootstrap, state), scores)
    try:
        consumer.run(stop)
    finally:
        consumer.close()
    """
)


def test_a_record_that_kills_its_replica_twice_is_dead_lettered_the_third_time(
    kafka_broker, tmp_path
) -> None:
    spec = streaming_spec("killer")
    events = feature_events(spec, 200, seed=4, prefix="ev")
    killer = json.dumps({**next(iter(events.values())), "amount": RAISES_ON}).encode()
    records = as_records(events)
    produce(kafka_broker.bootstrap, spec.streaming.input_topic,
            [*records[:120], (b"killer", killer), *records[120:]])  # fmt: skip
    (spec_file := tmp_path / "spec.json").write_text(spec.model_dump_json())
    (script := tmp_path / "replica.py").write_text(CRASHING_REPLICA)
    status_file = tmp_path / "supervisor.json"
    log_file = (tmp_path / "replicas.log").open("wb")  # the supervisor's and replicas' logs
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "loopline.runtime.supervise", "--status-file", str(status_file),
         "--", sys.executable, str(script), str(spec_file), kafka_broker.bootstrap, str(tmp_path)],
        stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        predictions = read_topic(
            kafka_broker.bootstrap,
            spec.streaming.output_topic,
            until=200,
            timeout=120,
            ids=set(events),
        )
        letters = read_topic(
            kafka_broker.bootstrap, spec.streaming.dead_letters, until=1, timeout=30
        )
        beat = json.loads(heartbeat_path(tmp_path, spec.name, 0).read_text())
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=60)
        log_file.close()

    missing = sorted(set(events) - {p["event_id"] for p in predictions})
    # Seen once in a full CI run under load (2026-12-07): events after the killer still
    # unscored after 120 s. Say enough to tell a slow restart from a lost event next time.
    story = (f"{len(missing)} of {len(events)} events unscored ({missing[:3]} .. {missing[-3:]}); "
             f"dead letters {[d['key'] for d in letters]}; supervisor {read_status(status_file)}; "
             f"heartbeat crashes {beat.get('crashes')}, events {beat.get('events')}; "
             f"the replicas' log ends:\n{_tail(tmp_path / 'replicas.log')}")  # fmt: skip
    assert not missing, story
    assert [d["key"] for d in letters] == ["killer"]
    offset = letters[0]["offset"]
    assert letters[0]["reason"].startswith("a replica died 2 times reading or scoring it")
    assert read_status(status_file)["restarts"] == 2  # died twice, not a third time
    # The heartbeat names where it died: the batch first, then the record alone.
    crashes = [(c["partition"], c["first"], c["last"]) for c in beat["crashes"]]
    assert crashes[-1] == (0, offset, offset) and crashes[0][1] <= offset <= crashes[0][2]
    assert not Path(tmp_path / spec.name / "replica-0.inflight.json").exists()


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
