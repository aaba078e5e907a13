"""Consumer-group lag measured the way KEDA and kafka-python's own tooling measure it, made
right on a broker that reports the wrong end offsets.

Lag per partition = the partition's end (its high watermark) minus the group's committed
offset: events not yet scored *and committed*, so a replica that stalls without committing
shows lag (the consumer's position would hide it). It is measured from outside the replicas
(the admin client), so it holds whether or not they are healthy.

The local broker (Tansu 0.6) answers a ListOffsets(latest) with the start of the partition's
last batch + 1, not its end: a 50-record partition reads as 1. The high watermark in a Fetch
response is right. So the end used here is the larger of the two: the reported offset on a
real Kafka (where they agree), the fetched high watermark here. A partition the group never
committed counts everything from its earliest offset (our consumers start at the earliest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from loopline.streaming.kafka_settings import client_settings

PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    end: int
    committed: int | None  # None: the group has committed nothing here
    lag: int


@dataclass(frozen=True)
class GroupLag:
    topic: str
    group: str
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)


def group_lag(bootstrap: str, group: str, topic: str) -> GroupLag:
    """The group's committed-offset lag on every partition of `topic`."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient, OffsetSpec

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=f"{group}-lag", **client_settings()
    )
    try:
        partitions = _partitions(admin, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        reported = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        earliest = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    ends = true_ends(bootstrap, {tp: reported[tp].offset for tp in tps})
    lags = []
    for tp in tps:
        done = committed.get(tp)
        offset = done.offset if done is not None and done.offset >= 0 else None
        start = offset if offset is not None else earliest[tp].offset
        lags.append(PartitionLag(tp.partition, ends[tp], offset, max(ends[tp] - start, 0)))
    return GroupLag(topic, group, lags)


def true_ends(bootstrap: str, reported: dict[Any, int]) -> dict[Any, int]:
    """Each partition's end: the larger of its reported end offset and the high watermark a
    fetch returns (read by a consumer outside any group, at the reported end)."""
    from kafka import KafkaConsumer

    probe = KafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_settings(),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=1024,  # the high watermark is what it is for, not records
    )
    try:
        probe.assign(list(reported))
        for tp, offset in reported.items():
            probe.seek(tp, max(offset - 1, 0))
        deadline = time.monotonic() + PROBE_SECONDS
        while time.monotonic() < deadline and any(probe.highwater(tp) is None for tp in reported):
            probe.poll(timeout_ms=100, max_records=1)
        return {tp: max(offset, probe.highwater(tp) or 0) for tp, offset in reported.items()}
    finally:
        probe.close()


def _partitions(admin: Any, topic: str) -> list[int]:
    [described] = admin.describe_topics([topic])
    return sorted(p["partition_index"] for p in described["partitions"])
