"""``loopline stream tail|produce <pipeline>``: watch and feed a pipeline's streams.

Debian's ``kcat`` (librdkafka 2.0.2) cannot connect to the local broker (Tansu 0.6 fails its
ApiVersionRequest); kafka-python and confluent-kafka 2.16 can. These two commands use
kafka-python, so the local streams can be read and fed with no other client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from loopline.streaming.kafka_settings import client_settings

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec

TOPICS = ("input", "output", "dead-letter")


def topic_of(spec: PipelineSpec, which: str) -> str:
    streaming = spec.streaming
    if streaming is None:
        raise SystemExit(f"{spec.name} has no streaming section")
    return {
        "input": streaming.input_topic,
        "output": streaming.output_topic,
        "dead-letter": streaming.dead_letters,
    }[which]


def tail(args: argparse.Namespace, spec: PipelineSpec, bootstrap: str) -> int:
    """Print a topic's records as JSON lines (from the start with --from-beginning)."""
    from kafka import KafkaConsumer

    topic = topic_of(spec, args.topic)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        **client_settings(),
        group_id=None,  # reads without joining (and without committing for) any group
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    shown, idle_since = 0, time.monotonic()
    try:
        while args.count is None or shown < args.count:
            batches = consumer.poll(timeout_ms=500)
            if not batches and args.idle and time.monotonic() - idle_since > args.idle:
                break
            for record in (r for batch in batches.values() for r in batch):
                print(json.dumps(_line(record)), flush=True)
                shown += 1
                idle_since = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"{shown} record(s) from {topic}", file=sys.stderr)
    return 0


def produce(args: argparse.Namespace, spec: PipelineSpec, bootstrap: str) -> int:
    """Send events: the lines of --file (or stdin with -), or demo events (--count)."""
    from kafka import KafkaProducer

    topic = topic_of(spec, "input")
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_settings())
    sent = 0
    pause = 1 / args.rate if args.rate else 0.0
    for key, value in _events(args, spec):
        producer.send(topic, key=key, value=value)
        sent += 1
        if pause:
            time.sleep(pause)
    producer.flush()
    producer.close()
    print(f"sent {sent} event(s) to {topic}", file=sys.stderr)
    return 0


def _events(args: argparse.Namespace, spec: PipelineSpec):
    if args.file:
        with contextlib.ExitStack() as stack:
            source = (
                sys.stdin
                if str(args.file) == "-"
                else stack.enter_context(open(args.file, encoding="utf-8"))
            )
            for number, line in enumerate(source):
                if line.strip():
                    yield _key(line, number), line.strip().encode()
        return
    from loopline.demo.card_transactions import generate

    rows = (
        generate(args.count, seed=args.seed)
        .select([spec.data.key, *spec.model.features.all])
        .to_pylist()
    )
    for row in rows:
        key = str(row.pop(spec.data.key))
        yield key.encode(), json.dumps(row).encode()


def _key(line: str, number: int) -> bytes:
    try:
        event = json.loads(line)
        return str(event.get("event_id") or f"line-{number}").encode()
    except (json.JSONDecodeError, AttributeError):
        return f"line-{number}".encode()  # sent as it is: the consumer dead-letters it


def _line(record: Any) -> dict[str, Any]:
    value: Any = record.value.decode("utf-8", errors="backslashreplace") if record.value else None
    with contextlib.suppress(json.JSONDecodeError):  # not JSON: shown as text
        value = json.loads(value) if value is not None else None
    key = record.key.decode("utf-8", errors="backslashreplace") if record.key else None
    return {"partition": record.partition, "offset": record.offset, "key": key, "value": value}
