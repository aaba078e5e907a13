"""One prediction's lineage, read from what the stages wrote: predictions, records, the
registry. Nothing here reads a log, so a trace is as good a year later as the day it ran.

A batch prediction is found in the committed prediction partitions (newest first; each file
filtered on the key column, not read whole); a stream prediction is found by the caller on the
output topic (`StreamPrediction.from_value`). From there: the version's metadata (training
run, snapshot objects with sha256, code version, metrics), the validation record of the
validated object the row came from (landed file, its sha256, report, validation run), and the
drift audits whose inputs hold that day's batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopline.data.predictions import committed_partitions
from loopline.data.window import partition_date
from loopline.records import RecordStage, RecordStore, StageRecord
from loopline.registry import ModelRegistry, RegistryError
from loopline.spec.sections import PipelineSpec
from loopline.storage.objects import ObjectStore

MAX_AUDITS = 5  # drift audits shown, newest first


@dataclass(frozen=True)
class BatchPrediction:
    key: str
    score: float
    model_version: int
    day: str  # the dt= partition
    file: str  # the committed prediction file that holds it
    run_id: str  # the batch_score run
    source_object: str | None  # the validated object it was read from (None: older output)

    kind = "batch"


@dataclass(frozen=True)
class StreamPrediction:
    key: str
    score: float
    model_version: int
    replica: int | None
    latency_ms: float | None
    topic: str | None  # where the event was read (None: a replica older than the field)
    partition: int | None
    offset: int | None
    event_time: datetime | None
    output: str  # where the prediction is: topic, partition, offset

    kind = "stream"

    @classmethod
    def from_value(cls, value: dict[str, Any], output: str) -> StreamPrediction:
        """A prediction as the replicas write it (``loopline.streaming.consumer``)."""
        source = value.get("input") or {}
        stamp = source.get("timestamp_ms")
        return cls(
            key=str(value["event_id"]),
            score=float(value["score"]),
            model_version=int(value["model_version"]),
            replica=value.get("replica"),
            latency_ms=value.get("latency_ms"),
            topic=source.get("topic"),
            partition=source.get("partition"),
            offset=source.get("offset"),
            event_time=datetime.fromtimestamp(stamp / 1000, UTC) if stamp else None,
            output=output,
        )


Prediction = BatchPrediction | StreamPrediction


@dataclass
class Trace:
    """Everything known about one prediction, each part None where it cannot be found
    (and `gaps` says why)."""

    prediction: Prediction
    model: dict[str, Any] | None = None  # the version's metadata, as the registry keeps it
    training_records: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None  # the validated object's validation record
    drift_audits: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.prediction.kind,
            "prediction": asdict(self.prediction),
            "model": self.model,
            "training_records": self.training_records,
            "validation": self.validation,
            "drift_audits": self.drift_audits,
            "gaps": self.gaps,
        }


def find_batch_prediction(
    store: ObjectStore, spec: PipelineSpec, key: str, days: int, today: date | None = None
) -> BatchPrediction | None:
    """The newest batch prediction of `key` in the last `days` days of committed output."""
    if spec.batch_inference is None:
        return None
    last = today or datetime.now(UTC).date()
    partitions = committed_partitions(
        store, spec.data.bucket, spec.batch_inference.output_prefix, last - timedelta(days), last
    )
    for partition in reversed(partitions):
        for name in partition.files:
            if found := _find_in_file(store, spec, name, key):
                return BatchPrediction(
                    key=key,
                    score=float(found["score"]),
                    model_version=int(found["model_version"]),
                    day=partition.day,
                    file=f"s3://{spec.data.bucket}/{name}",
                    run_id=str(found.get("airflow_run_id") or partition.run_id),
                    source_object=found.get("source_object"),
                )
    return None


def _find_in_file(
    store: ObjectStore, spec: PipelineSpec, name: str, key: str
) -> dict[str, Any] | None:
    table = pq.read_table(pa.BufferReader(store.get(spec.data.bucket, name)))
    matches = table.filter(pc.equal(table.column(spec.data.key).cast(pa.string()), key))
    return matches.slice(0, 1).to_pylist()[0] if matches.num_rows else None


def trace_prediction(store: ObjectStore, spec: PipelineSpec, prediction: Prediction) -> Trace:
    """Follow `prediction` back through the registry and the records."""
    trace = Trace(prediction)
    records = RecordStore(store, spec.data.bucket)
    _model(trace, ModelRegistry(store, spec.data.bucket), records, spec)
    day = _day(prediction)
    if isinstance(prediction, BatchPrediction):
        _validation(trace, records, spec, prediction)
    elif prediction.topic is None:
        trace.gaps.append("the prediction names no input topic (a replica older than tracing)")
    trace.drift_audits = _audits(records, spec, day) if day else []
    if day and not trace.drift_audits:
        trace.gaps.append(f"no drift audit covered {day}")
    return trace


def _model(trace: Trace, registry: ModelRegistry, records: RecordStore, spec: PipelineSpec) -> None:
    try:
        version = registry.get(spec.name, trace.prediction.model_version)
    except RegistryError as exc:
        trace.gaps.append(str(exc))
        return
    trace.model = version.model_dump(mode="json", exclude={"input_schema", "artifacts"})
    run_id = version.lineage.get("run_id")
    if run_id:
        stages = (
            RecordStage.SNAPSHOT,
            RecordStage.TRAINING,
            RecordStage.JUDGEMENT,
            RecordStage.PROMOTION,
        )
        trace.training_records = [
            _brief(record)
            for record in records.records(spec.name, run_id=run_id)
            if record.stage in stages
        ]


def _validation(
    trace: Trace, records: RecordStore, spec: PipelineSpec, prediction: BatchPrediction
) -> None:
    if prediction.source_object is None:
        trace.gaps.append("the prediction names no source object (output older than tracing)")
        return
    wanted = f"s3://{spec.data.bucket}/{prediction.source_object}"
    for record in records.records(spec.name, RecordStage.VALIDATION):
        if record.subject != "run" and any(ref.uri == wanted for ref in record.outputs):
            trace.validation = _brief(record)
            return
    trace.gaps.append(f"no validation record wrote {wanted}")


def _audits(records: RecordStore, spec: PipelineSpec, day: str) -> list[dict[str, Any]]:
    """The drift audits whose inputs hold a batch of `day`, newest first."""
    covering = [
        record
        for record in records.records(spec.name, RecordStage.DRIFT)
        if record.subject == "run" and any(_input_day(ref.uri) == day for ref in record.inputs)
    ]
    return [_brief(record) for record in reversed(covering[-MAX_AUDITS:])]


def _input_day(uri: str) -> str | None:
    try:
        found = partition_date(uri)
    except ValueError:
        return None
    return found.isoformat() if found else None


def _day(prediction: Prediction) -> str | None:
    if isinstance(prediction, BatchPrediction):
        return prediction.day
    return prediction.event_time.date().isoformat() if prediction.event_time else None


def _brief(record: StageRecord) -> dict[str, Any]:
    """A record as a trace shows it: what, when, the verdict and its reasons and numbers."""
    return {
        "stage": str(record.stage),
        "subject": record.subject,
        "run_id": record.run_id,
        "dag_id": record.dag_id,
        "verdict": record.verdict,
        "reasons": record.reasons[:5],
        "numbers": record.numbers,
        "ended_at": record.ended_at.isoformat(),
        "code_version": record.code_version,
        "spec_sha256": record.spec_sha256,
        "inputs": [ref.model_dump(exclude_none=True) for ref in record.inputs[:10]],
        "outputs": [ref.model_dump(exclude_none=True) for ref in record.outputs[:10]],
        "payload": {k: record.payload[k] for k in _PAYLOAD_KEYS if k in record.payload},
    }


# The payload fields a trace shows: where a file went and its report, a model's decision.
_PAYLOAD_KEYS = ("source", "destination", "report_key", "archive_key", "decision", "report")


__all__ = [
    "BatchPrediction",
    "Prediction",
    "StreamPrediction",
    "Trace",
    "find_batch_prediction",
    "trace_prediction",
]
