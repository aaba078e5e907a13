"""Committed-offset lag on the real local broker, whose reported end offsets are wrong."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic, OffsetSpec
from loopline.streaming.lag import group_lag


def test_lag_counts_every_uncommitted_event_where_the_broker_reports_the_end_wrong(
    kafka_broker,
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    admin.create_topics([NewTopic("lagged", 2, 1)])
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=20)
    for i in range(100):
        producer.send("lagged", value=b"x", partition=i % 2)
    producer.flush()
    producer.close()
    tps = [TopicPartition("lagged", p) for p in (0, 1)]
    reported = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    admin.close()
    # The broker's quirk this module corrects: 50 records, reported end 1 (or less than 50).
    assert all(reported[tp].offset < 50 for tp in tps)

    nothing_committed = group_lag(kafka_broker.bootstrap, "fresh-group", "lagged")
    assert [p.end for p in nothing_committed.partitions] == [50, 50]
    assert nothing_committed.total == 100

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap, group_id="half", enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )  # fmt: skip
    consumer.assign([tps[0]])
    taken, deadline = 0, time.monotonic() + 20
    while taken < 30 and time.monotonic() < deadline:
        taken += sum(len(r) for r in consumer.poll(timeout_ms=200, max_records=30 - taken).values())
    consumer.commit()
    consumer.close()

    half = group_lag(kafka_broker.bootstrap, "half", "lagged")
    assert [(p.partition, p.committed, p.lag) for p in half.partitions] == [
        (0, 30, 20),
        (1, None, 50),
    ]
    assert half.total == 70
