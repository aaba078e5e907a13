"""``loopline trace <pipeline> <key | event id>``: where one prediction came from.

Batch predictions are looked up in the committed output of the last ``--days`` days; stream
predictions on the output topic (read from its start, without joining any group, at most
``--max-records``). What follows is `loopline.trace`: records and outputs, never logs.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this module to build its parser: these load on use
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore
    from loopline.trace import StreamPrediction, Trace
    from loopline.trace.lineage import Prediction

MAX_RECORDS = 1_000_000  # of the output topic, read to find a stream prediction
IDLE_SECONDS = 5.0  # a topic that yields nothing for this long has been read


def print_trace(
    args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore, bootstrap: str | None
) -> int:
    from loopline.trace import find_batch_prediction, trace_prediction

    prediction: Any = None
    if args.source in ("any", "batch"):
        prediction = find_batch_prediction(store, spec, args.id, args.days)
    if prediction is None and args.source in ("any", "stream") and spec.streaming is not None:
        if bootstrap is None:
            print("no broker to search the stream predictions on (give --bootstrap)")
        else:
            prediction = find_stream_prediction(spec, bootstrap, args.id, args.max_records)
    if prediction is None:
        print(f"{spec.name}: no prediction of {args.id!r} found ({searched_places(args, spec)})")
        return 1
    trace = trace_prediction(store, spec, prediction)
    if args.json:
        print(json.dumps(trace.to_dict(), indent=2, default=str))
    else:
        print(describe(trace))
    return 0


def find_stream_prediction(
    spec: PipelineSpec, bootstrap: str, event_id: str, max_records: int = MAX_RECORDS
) -> StreamPrediction | None:
    """The latest prediction keyed `event_id` on the output topic, reading it from the start
    to its end offsets (or `max_records`) without joining or committing for any group."""
    from kafka import KafkaConsumer, TopicPartition

    from loopline.streaming.kafka_settings import client_settings
    from loopline.trace import StreamPrediction

    assert spec.streaming is not None
    topic, wanted = spec.streaming.output_topic, event_id.encode()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, **client_settings(), group_id=None, enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return None
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found, read, idle_since = None, 0, time.monotonic()
        while read < max_records and any(consumer.position(p) < ends[p] for p in partitions):
            batches = consumer.poll(timeout_ms=500)
            if not batches and time.monotonic() - idle_since > IDLE_SECONDS:
                break
            for record in (r for batch in batches.values() for r in batch):
                read, idle_since = read + 1, time.monotonic()
                if record.key == wanted:
                    found = record
        if found is None:
            return None
        where = f"{topic} partition {found.partition} offset {found.offset}"
        return StreamPrediction.from_value(json.loads(found.value), where)
    finally:
        consumer.close()


def describe(trace: Trace) -> str:
    prediction = trace.prediction
    lines = [f"== {prediction.kind} prediction of {prediction.key}: score {prediction.score:.6f}"]
    lines += _prediction_lines(prediction)
    lines += _model_lines(trace)
    if trace.validation:
        lines += _validation_lines(trace.validation)
    lines.append("drift audits of that day (newest first):" if trace.drift_audits else "")
    for audit in trace.drift_audits:
        reasons = "; ".join(audit["reasons"][:2]) or "-"
        lines.append(
            f"  {audit['ended_at'][:19]}  {audit['run_id']}: {audit['verdict']}  ({reasons})"
        )
    lines += [f"not found: {gap}" for gap in trace.gaps]
    return "\n".join(line for line in lines if line != "")


def _prediction_lines(prediction: Prediction) -> list[str]:
    from loopline.trace import BatchPrediction

    if isinstance(prediction, BatchPrediction):
        return [
            f"  scored by run {prediction.run_id} into {prediction.file} (dt={prediction.day})",
            f"  from validated object {prediction.source_object or '?'}",
        ]
    return [
        f"  written to {prediction.output} by replica {prediction.replica}, "
        f"{prediction.latency_ms} ms after the event",
        f"  read from {prediction.topic} partition {prediction.partition} offset "
        f"{prediction.offset}, event time {prediction.event_time or '?'}",
    ]


def _model_lines(trace: Trace) -> list[str]:
    model = trace.model
    if model is None:
        return [f"model version {trace.prediction.model_version}: not in the registry"]
    lineage, snapshot = model.get("lineage", {}), model.get("snapshot", {})
    metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(model.get("metrics", {}).items()))
    objects = snapshot.get("objects", [])
    lines = [
        f"model {model['name']} v{model['version']} (registered {str(model['created_at'])[:19]}; "
        f"code {model.get('code_version')}): {metrics}",
        _trained_by(lineage),
        f"  on a snapshot of {len(objects)} validated object(s), {snapshot.get('rows', '?')} "
        f"rows, window {snapshot.get('window_start', '?')} .. {snapshot.get('window_end', '?')}",
    ]
    lines += [f"    {o.get('key')} sha256 {str(o.get('sha256'))[:12]}" for o in objects[:5]]
    if len(objects) > 5:
        lines.append(f"    ... {len(objects) - 5} more")
    for record in trace.training_records:
        why = f" ({record['reasons'][0]})" if record["reasons"] else ""
        lines.append(f"  {record['stage']}: {record['verdict']}{why}")
    return lines


def _trained_by(lineage: dict[str, str]) -> str:
    if "run_id" not in lineage:
        return "  trained outside Airflow: no DAG run in its lineage"
    reason = lineage.get("reason") or "no reason recorded"
    return f"  trained by {lineage.get('dag_id', '?')} run {lineage['run_id']} ({reason})"


def _validation_lines(record: dict[str, Any]) -> list[str]:
    payload = record["payload"]
    landed: dict[str, Any] = record["inputs"][0] if record["inputs"] else {}
    where, sha256 = landed.get("uri", record["subject"]), str(landed.get("sha256"))[:12]
    return [
        f"landed as {where} (sha256 {sha256}, "
        f"{landed.get('rows', '?')} rows); validated by run {record['run_id']}: "
        f"{record['verdict']}",
        f"  report: {payload.get('report_key') or 'none (it passed)'}; landed bytes kept at "
        f"{payload.get('archive_key') or '?'}",
    ]


def searched_places(args: argparse.Namespace, spec: PipelineSpec) -> str:
    """Where a prediction was looked for (`trace` and `explain` look in the same places)."""
    places = []
    if args.source in ("any", "batch") and spec.batch_inference is not None:
        places.append(f"batch output of the last {args.days} days")
    if args.source in ("any", "stream") and spec.streaming is not None:
        places.append(f"topic {spec.streaming.output_topic}")
    return "searched " + (" and ".join(places) or "nothing: the pipeline has no such output")


__all__ = ["describe", "find_stream_prediction", "print_trace", "searched_places"]
