"""``loopline stream tail|produce|infer <pipeline>``: watch and feed a pipeline's streams, and
ask its online endpoint (``streaming.serve``) for scores.

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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from loopline.streaming.kafka_settings import client_settings

if TYPE_CHECKING:  # the CLI imports this module to build its parser: spec loads on use
    from loopline.spec import PipelineSpec
    from loopline.spec.sections import ColumnType

TOPICS = ("input", "output", "dead-letter")  # the --topic choices, as `loopline stream` offers

Record = tuple[bytes, bytes]  # a Kafka record's key (the event id) and value (JSON)
# Synthetic events' values per declared type. The replicas read numeric features as JSON
# numbers only (a bool column's values go as 0/1, as batch scoring casts them) and categorical
# ones as strings only; a string or timestamp column has no number to stand for it.
SYNTHETIC_NUMBERS = ("float32", "float64", "int64", "bool")  # ColumnType values
SYNTHETIC_CATEGORIES = 3  # distinct values per categorical feature


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
    """Send events: the lines of --file (or stdin with -), or --count generated ones."""
    from kafka import KafkaProducer

    topic = topic_of(spec, "input")
    if args.file:
        events: Iterable[Record] = _file_events(args.file, spec)
    else:  # built before connecting, so a spec they cannot fit fails first
        events = generated_events(spec, args.count, args.seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_settings())
    sent = 0
    pause = 1 / args.rate if args.rate else 0.0
    try:  # a bad line stops the run: what was sent before it is still delivered and counted
        for key, value in events:
            producer.send(topic, key=key, value=value)
            sent += 1
            if pause:
                time.sleep(pause)
    finally:
        producer.flush()
        producer.close()
        print(f"sent {sent} event(s) to {topic}", file=sys.stderr)
    return 0


def infer(args: argparse.Namespace, spec: PipelineSpec) -> int:
    """Ask the pipeline's online endpoint to score --count generated events (or --file's) in
    one Open Inference Protocol v2 request and print its answer; --print-request prints the
    request instead, for curl or any other client."""
    import httpx

    rows = [json.loads(value) for _, value in _events(args, spec)]
    body = v2_request(spec, rows, request_id=f"cli-{int(time.time())}")
    if args.print_request:
        print(json.dumps(body))
        return 0
    url = f"{args.url or serve_url(spec)}/v2/models/{spec.name}/infer"
    try:
        response = httpx.post(url, json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise SystemExit(
            f"{url}: no answer ({exc}); are the pipeline's replicas deployed?"
        ) from None
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 200 else 1


def serve_url(spec: PipelineSpec) -> str:
    serve = spec.streaming.serve if spec.streaming is not None else None
    if serve is None or not serve.http_port:
        raise SystemExit(f"{spec.name} serves no REST endpoint: add streaming.serve to its spec")
    host = "127.0.0.1" if serve.host in ("0.0.0.0", "::") else serve.host
    return f"http://{host}:{serve.http_port}"


def v2_request(spec: PipelineSpec, rows: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    """Rows of features as a v2 infer request: one tensor per feature, by the spec's types."""
    features = spec.model.features
    tensors = [(name, "FP32") for name in features.numeric]
    tensors += [(name, "BYTES") for name in features.categorical]
    missing = sorted({name for name, _ in tensors for row in rows if name not in row})
    if missing:
        raise SystemExit(f"the events lack feature(s) {missing}")
    inputs = [{"name": name, "datatype": datatype, "shape": [len(rows)],
               "data": [row[name] for row in rows]} for name, datatype in tensors]  # fmt: skip
    return {"id": request_id, "inputs": inputs}


def _events(args: argparse.Namespace, spec: PipelineSpec) -> Iterable[Record]:
    if args.file:
        return list(_file_events(args.file, spec))
    return generated_events(spec, args.count or 1, args.seed)


def generated_events(spec: PipelineSpec, count: int, seed: int) -> list[Record]:
    """`count` events keyed by event id: the demo feed's when it holds the spec's key and
    features with their declared types (the card_fraud demo), else synthetic values of each
    feature's declared type (SystemExit, saying why, when a feature's type has none)."""
    if _demo_feed_fits(spec):
        from loopline.demo.card_transactions import generate

        table = generate(count, seed=seed).select([spec.data.key, *spec.model.features.all])
        rows = table.to_pylist()
    else:
        rows = synthetic_rows(spec, count, seed)
        print(
            f"{spec.name}: {count} synthetic event(s), random values of each feature's declared "
            "type; for realistic ones send your own rows with --file",
            file=sys.stderr,
        )
    return [_as_record(row, spec.data.key) for row in rows]


def _demo_feed_fits(spec: PipelineSpec) -> bool:
    from loopline.data.reading import ARROW_TYPES
    from loopline.demo.card_transactions import SCHEMA

    declared = {column.name: ARROW_TYPES[column.type] for column in spec.data.columns}
    needed = [spec.data.key, *spec.model.features.all]
    return all(
        name in SCHEMA.names and SCHEMA.field(name).type == declared.get(name) for name in needed
    )


def synthetic_rows(spec: PipelineSpec, count: int, seed: int) -> list[dict[str, Any]]:
    """Seeded random rows holding the spec's key and every feature, as the replicas read
    them (`loopline.streaming.events`): numbers near 0 for numeric features, a few strings
    per categorical feature. The values follow no learned distribution: for plumbing only."""
    import numpy as np

    types = {column.name: column.type for column in spec.data.columns}
    untyped = [n for n in spec.model.features.numeric if types.get(n) not in SYNTHETIC_NUMBERS]
    if untyped:
        described = ", ".join(f"{name} ({types.get(name)})" for name in untyped)
        raise SystemExit(
            f"{spec.name}: cannot make up events: numeric feature(s) {described} have no "
            "number type (float32, float64, int64 or bool); send your own rows with --file"
        )
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {
        spec.data.key: [f"{spec.name}-{seed}-{i:06d}" for i in range(count)]
    }
    for name in spec.model.features.numeric:
        columns[name] = _synthetic_numbers(rng, types[name], count)
    for name in spec.model.features.categorical:
        choices = [f"{name}_{i}" for i in range(SYNTHETIC_CATEGORIES)]
        columns[name] = [str(choice) for choice in rng.choice(choices, size=count)]
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _synthetic_numbers(rng: Any, column_type: ColumnType, count: int) -> list[float | int]:
    if column_type == "bool":
        return [int(value) for value in rng.integers(0, 2, size=count)]
    if column_type == "int64":
        return [int(value) for value in rng.integers(0, 100, size=count)]
    return [round(float(value), 4) for value in rng.standard_normal(count)]


def _as_record(row: dict[str, Any], key: str) -> Record:
    event_id = str(row.pop(key))  # the record's key: the replicas take it as the event id
    return event_id.encode(), json.dumps(row).encode()


def _file_events(path: str, spec: PipelineSpec) -> Iterable[Record]:
    if str(path) == "-":
        return line_records(sys.stdin, spec.data.key, "stdin")
    try:  # opened here, before connecting, so a wrong path fails first
        source = open(path, encoding="utf-8")  # noqa: SIM115 (_closing closes it)
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read the events: {exc.strerror}") from None
    return _closing(source, line_records(source, spec.data.key, str(path)))


def _closing(source: Any, records: Iterator[Record]) -> Iterator[Record]:
    with source:
        yield from records


def line_records(lines: Iterable[str], key: str, source: str) -> Iterator[Record]:
    """--file's lines as records keyed by event id: each JSON object's `key` field (the
    spec's data.key, as generated events are keyed), else its `event_id` (what the replicas
    read from a record with no key). A line that is not a JSON object goes as it is, keyed
    `line-<number>`: the replicas dead-letter it, which is how to try the dead-letter topic.
    SystemExit, naming the line, for an object with neither field."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            event = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or JSON nested too deep to read
            event = None
        if not isinstance(event, dict):
            yield f"line-{number}".encode(), text.encode()
            continue
        yield _event_id(event, key, f"{source} line {number}").encode(), text.encode()


def _event_id(event: dict[str, Any], key: str, where: str) -> str:
    event_id = event.get(key)
    if event_id is None:
        event_id = event.get("event_id")
    if isinstance(event_id, bool) or not isinstance(event_id, str | int) or event_id == "":
        found = "" if event_id is None else f" (found {event_id!r})"
        raise SystemExit(
            f"{where}: no event id{found}: each event needs a {key!r} field (the spec's "
            "data.key) or an 'event_id' field, a non-empty string or an integer"
        )
    return str(event_id)


def _line(record: Any) -> dict[str, Any]:
    value: Any = record.value.decode("utf-8", errors="backslashreplace") if record.value else None
    with contextlib.suppress(json.JSONDecodeError):  # not JSON: shown as text
        value = json.loads(value) if value is not None else None
    key = record.key.decode("utf-8", errors="backslashreplace") if record.key else None
    return {"partition": record.partition, "offset": record.offset, "key": key, "value": value}
