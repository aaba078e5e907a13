"""Producing feature events and reading topics back, for the streaming tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, KafkaProducer
from loopline.demo.card_transactions import generate
from loopline.spec.sections import PipelineSpec

from support.validated_data import DEMO

if TYPE_CHECKING:
    from loopline.streaming.consumer import ScoringConsumer


def streaming_spec(name: str, **changes: Any) -> PipelineSpec:
    """The demo spec, streaming on topics and a consumer group of its own (`name`)."""
    streaming = DEMO.streaming.model_copy(
        update={
            "input_topic": f"{name}.in",
            "output_topic": f"{name}.out",
            "consumer_group": f"{name}-scorer",
            **changes,
        }
    )
    return DEMO.model_copy(update={"streaming": streaming})


def run_until(
    consumer: ScoringConsumer, done: Callable[[], bool], timeout: float = 60
) -> list[BaseException]:
    """Run `consumer` in a thread until `done()`, it raises, or `timeout`; then stop and close
    it. Returns what its run raised (nothing, when it is poison-proof)."""
    stop, errors = threading.Event(), []

    def run() -> None:
        try:
            consumer.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=30)
    consumer.close()
    return errors


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


def infer_body(spec: PipelineSpec, rows: list[dict], request_id: str) -> dict:
    """An Open Inference Protocol v2 request: each feature one tensor, numbers FP32,
    categories BYTES."""
    features = spec.model.features
    inputs = [{"name": name, "datatype": "FP32", "shape": [len(rows)],
               "data": [row[name] for row in rows]} for name in features.numeric]  # fmt: skip
    inputs += [{"name": name, "datatype": "BYTES", "shape": [len(rows)],
                "data": [row[name] for row in rows]} for name in features.categorical]  # fmt: skip
    return {"id": request_id, "inputs": inputs}
