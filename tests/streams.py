"""Producing feature events and reading topics back, for the streaming tests."""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from loopline.demo.card_transactions import generate
from loopline.spec.model import PipelineSpec


def feature_events(spec: PipelineSpec, count: int, seed: int, prefix: str) -> dict[str, dict]:
    """`count` demo events (event id -> the event's JSON object), each holding every feature."""
    rows = generate(count, seed=seed).select(spec.model.features.all).to_pylist()
    return {f"{prefix}-{i:06d}": row for i, row in enumerate(rows)}


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def as_records(events: dict[str, dict]) -> list[tuple[bytes, bytes]]:
    return [(key.encode(), json.dumps(row).encode()) for key, row in events.items()]


def read_topic(
    bootstrap: str, topic: str, until: int, timeout: float = 60, ids: set[str] | None = None
) -> list[dict[str, Any]]:
    """Every record of `topic` (JSON values), once at least `until` were read (and, with
    `ids`, every one of those event ids: duplicates do not count) or time is up."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, fetch_max_wait_ms=100,
    )  # fmt: skip
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not _enough(found, until, ids):
            for batch in consumer.poll(timeout_ms=200).values():
                for record in batch:
                    found.append({**json.loads(record.value), "_headers": dict(record.headers)})
    finally:
        consumer.close()
    return found


def _enough(found: list[dict[str, Any]], until: int, ids: set[str] | None) -> bool:
    if len(found) < until:
        return False
    return ids is None or ids <= {record.get("event_id") for record in found}
