"""The crash guard and the scoring isolation of a replica, without a broker: which records a
death covers, one record at a time after a death, dead-lettered after two, and a model that
fails on every row is the model's fault (raised), not the events' (never dead-lettered)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from loopline.spec import load_spec
from loopline.streaming.consumer import ScorerBroken, ScoringConsumer
from loopline.streaming.crashes import CrashGuard
from loopline.streaming.deployment import ReplicaStatus
from support.paths import PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
GOOD = {name: 1.0 for name in SPEC.model.features.numeric} | {
    name: "web" for name in SPEC.model.features.categorical
}


@dataclass
class Record:  # what the replica reads of a Kafka record
    offset: int
    value: bytes
    topic: str = "in"
    partition: int = 0
    key: bytes = b""
    timestamp: int = 0

    def __post_init__(self) -> None:
        self.key = self.key or f"e{self.offset}".encode()


def records(count: int, **changed: dict) -> list[Record]:
    return [
        Record(i, json.dumps({**GOOD, **changed.get(f"e{i}", {})}).encode()) for i in range(count)
    ]


def bare_consumer(folder: Path, scorer, slot: int = 0) -> ScoringConsumer:
    """The consumer's reading and scoring, without Kafka clients."""
    consumer = ScoringConsumer.__new__(ScoringConsumer)
    consumer.spec, consumer.streaming, consumer.model = SPEC, SPEC.streaming, SPEC.model
    consumer.scorer = scorer
    consumer.crashes = CrashGuard(folder, slot)
    return consumer


def ones(table: pa.Table) -> np.ndarray:
    return np.ones(table.num_rows, np.float32)


def test_a_death_while_holding_records_is_found_by_the_next_process(tmp_path) -> None:
    first = CrashGuard(tmp_path, 0)
    first.hold(records(5))  # ... and the process dies here
    second = CrashGuard(tmp_path, 0)
    assert [(c.partition, c.first, c.last) for c in second.found] == [(0, 0, 4)]
    assert not first.inflight.exists()
    assert [second.deaths(r) for r in records(6)] == [1, 1, 1, 1, 1, 0]
    assert len(second.recent()) == 1
    third = CrashGuard(tmp_path, 0)  # a clean start finds no new death
    assert third.found == [] and len(third.recent()) == 1


def test_after_a_death_records_are_scored_one_by_one_and_a_second_death_names_one(
    tmp_path,
) -> None:
    calls: list[int] = []

    def counting(table: pa.Table) -> np.ndarray:
        calls.append(table.num_rows)
        return ones(table)

    CrashGuard(tmp_path, 1).hold(records(4))  # slot 1 died on offsets 0-3 ...
    CrashGuard(tmp_path, 1)  # ... its next process counted the death ...
    consumer = bare_consumer(tmp_path, counting)  # ... and slot 0 now has the partition
    scored, poison = consumer._read_and_score(records(6))
    assert len(scored) == 6 and poison == []
    assert sorted(calls) == [1, 1, 1, 1, 2]  # the suspects alone, the two others together

    CrashGuard(tmp_path, 0).hold([records(4)[2]])  # died again, holding offset 2 alone
    consumer = bare_consumer(tmp_path, counting)
    scored, poison = consumer._read_and_score(records(4))
    assert [(r.offset, why.kind) for r, why in poison] == [(2, "crash")]
    assert poison[0][1].reason.startswith("a replica died 2 times reading or scoring it")
    assert sorted(s.record.offset for s in scored) == [0, 1, 3]
    assert not consumer.crashes.inflight.exists()


def test_a_failing_batch_is_split_until_the_events_that_fail_alone_are_found(tmp_path) -> None:
    calls: list[int] = []

    def picky(table: pa.Table) -> np.ndarray:
        calls.append(table.num_rows)
        if (table.column("amount").to_numpy() == 13).any():
            raise ValueError("unlucky")
        return ones(table)

    batch = records(64, e5={"amount": 13}, e40={"amount": 13})
    scored, poison = bare_consumer(tmp_path, picky)._read_and_score(batch)
    assert sorted(r.offset for r, _ in poison) == [5, 40]
    assert all(why.reason == "scoring failed: ValueError: unlucky" for _, why in poison)
    assert len(scored) == 62
    assert len(calls) <= 1 + 2 * 2 * 6  # two bisections of depth log2(64): not 64 calls


def test_a_model_that_fails_on_every_row_is_raised_not_dead_lettered(tmp_path) -> None:
    def broken(table: pa.Table) -> np.ndarray:
        raise RuntimeError("weights missing")

    consumer = bare_consumer(tmp_path, broken)
    with pytest.raises(ScorerBroken, match="known-good row too: weights missing"):
        consumer._read_and_score(records(3))

    def all_nan(table: pa.Table) -> np.ndarray:
        return np.full(table.num_rows, np.nan)

    with pytest.raises(ScorerBroken, match="scores a known-good row"):
        bare_consumer(tmp_path, all_nan)._read_and_score(records(3))


def test_a_replica_dying_on_records_is_a_problem_naming_partition_and_offsets() -> None:
    crash = {"topic": "in", "partition": 2, "first": 7, "last": 7, "at": 0.0}
    status = ReplicaStatus(1, True, "running", 3, 0.0, {"crashes": [crash]}, 4, True)
    assert status.problems() == [
        "slot 1: a replica died holding in partition 2 offsets 7-7",
        "slot 1: crash-looping (4 restarts)",
    ]
    assert ReplicaStatus(0, True, "running", 3, 0.0, {}).problems() == []
