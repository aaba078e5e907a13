"""``loopline explain <pipeline> <key | event id>``: why one prediction scored what it did.

The prediction is found the way ``loopline trace`` finds it (the committed batch output of the
last ``--days`` days, then the output topic). Its input row is read back from where it was
scored: a batch row from the validated object the prediction names, a stream event from the
input topic at the partition and offset the prediction records (gone once the topic's
retention dropped it: said so). The version that made it is loaded from the registry, served
as batch scoring and the consumers serve it, and explained by ``loopline.serving.explain``
against a seeded sample of that version's holdout. The attributions must add up to the
score's difference from the base value within ``ADDITIVITY_TOLERANCE``, and the recomputed
score must match the stored one.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopline.commands.trace import searched_places

if TYPE_CHECKING:  # the CLI imports this module to build its parser: these load on use
    from loopline.registry import ModelRegistry, ModelVersion
    from loopline.serving.explain import Explanation
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore
    from loopline.trace import BatchPrediction, StreamPrediction

# The served model recomputes the stored score from the same row: float32 arithmetic on a
# batch of another size may differ in the last bits, never by more than this.
SCORE_TOLERANCE = 1e-5
SEEK_TIMEOUT_MS = 10_000  # reading one event back off the input topic


class InputUnavailable(Exception):
    """The prediction's input row cannot be read back (why, in the message)."""


@dataclass(frozen=True)
class ExplainedPrediction:
    prediction: BatchPrediction | StreamPrediction
    row: dict[str, Any]  # the features as scored
    explanation: Explanation
    background: str  # where the background rows came from

    @property
    def stored_score_gap(self) -> float:
        return abs(self.explanation.rows[0].score - self.prediction.score)

    def to_dict(self) -> dict[str, Any]:
        from loopline.serving.explain import ADDITIVITY_TOLERANCE

        row = self.explanation.rows[0]
        return {
            "kind": self.prediction.kind,
            "prediction": asdict(self.prediction),
            "model_version": self.prediction.model_version,
            "method": self.explanation.method,
            "library": self.explanation.library,
            "max_evals": self.explanation.max_evals,
            "seed": self.explanation.seed,
            "background": self.background,
            "background_rows": self.explanation.background_rows,
            "base_value": row.base_value,
            "score": row.score,
            "stored_score": self.prediction.score,
            "additivity_gap": row.additivity_gap,
            "additivity_tolerance": ADDITIVITY_TOLERANCE,
            "attributions": [
                {"feature": name, "value": self.row[name], "attribution": value}
                for name, value in row.ranked()
            ],
        }


def print_explanation(
    args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore, bootstrap: str | None
) -> int:
    from loopline.registry import ModelRegistry, RegistryError

    prediction = _find(args, spec, store, bootstrap)
    if prediction is None:
        where = searched_places(args, spec)
        print(f"error: {spec.name}: no prediction of {args.id!r} found ({where})")
        return 1
    try:
        row = input_row(store, spec, prediction, bootstrap)
        explained = explain_prediction(
            ModelRegistry(store, spec.data.bucket), spec, prediction, row, args.background
        )
    except (InputUnavailable, RegistryError) as exc:
        print(f"error: cannot explain the {prediction.kind} prediction of {args.id!r}: {exc}")
        return 1
    print(
        json.dumps(explained.to_dict(), indent=2, default=str) if args.json else describe(explained)
    )
    return 0 if explained.stored_score_gap <= SCORE_TOLERANCE else 1


def _find(
    args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore, bootstrap: str | None
) -> BatchPrediction | StreamPrediction | None:
    """The prediction, searched as `loopline trace` searches it."""
    from loopline.commands.trace import find_stream_prediction
    from loopline.trace import find_batch_prediction

    batch = None
    if args.source in ("any", "batch"):
        batch = find_batch_prediction(store, spec, args.id, args.days)
    if batch is not None:
        return batch
    if args.source in ("any", "stream") and spec.streaming is not None:
        if bootstrap is None:
            print("no broker to search the stream predictions on (give --bootstrap)")
            return None
        return find_stream_prediction(spec, bootstrap, args.id, args.max_records)
    return None


def input_row(
    store: ObjectStore,
    spec: PipelineSpec,
    prediction: BatchPrediction | StreamPrediction,
    bootstrap: str | None,
) -> pa.Table:
    """The one row the prediction scored, as the model's input table."""
    from loopline.trace import BatchPrediction

    if isinstance(prediction, BatchPrediction):
        return _batch_row(store, spec, prediction)
    if bootstrap is None:
        raise InputUnavailable("no broker to read the event back from (give --bootstrap)")
    return _stream_row(spec, prediction, bootstrap)


def _batch_row(store: ObjectStore, spec: PipelineSpec, prediction: BatchPrediction) -> pa.Table:
    import pyarrow.compute as pc

    from loopline.spec.sections import FileFormat
    from loopline.storage.formats import decode

    if prediction.source_object is None:
        raise InputUnavailable(
            f"the prediction in {prediction.file} names no source object (batch output older "
            "than tracing): its input row cannot be found"
        )
    bucket, key = spec.data.bucket, prediction.source_object
    if store.head(bucket, key) is None:
        raise InputUnavailable(f"its source object s3://{bucket}/{key} no longer exists")
    table = decode(store.get(bucket, key), FileFormat.PARQUET)
    rows = table.filter(pc.equal(table.column(spec.data.key).cast(pa.string()), prediction.key))
    if rows.num_rows == 0:
        raise InputUnavailable(f"s3://{bucket}/{key} holds no row keyed {prediction.key!r}")
    return rows.slice(0, 1).select(spec.model.features.all)


def _stream_row(spec: PipelineSpec, prediction: StreamPrediction, bootstrap: str) -> pa.Table:
    """The event at the partition and offset the prediction records, parsed as the replica
    parsed it."""
    from kafka import KafkaConsumer, TopicPartition

    from loopline.streaming.events import Event, features_table, parse_event
    from loopline.streaming.kafka_settings import client_settings

    if prediction.topic is None or prediction.partition is None or prediction.offset is None:
        raise InputUnavailable(
            "the prediction names no input topic, partition and offset (a replica older than "
            "tracing): its event cannot be read back"
        )
    assert spec.streaming is not None  # a stream prediction comes from a streaming section
    where = TopicPartition(prediction.topic, prediction.partition)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, **client_settings(), group_id=None, enable_auto_commit=False
    )
    try:
        consumer.assign([where])
        earliest = consumer.beginning_offsets([where])[where]
        if prediction.offset < earliest:
            raise InputUnavailable(
                f"{prediction.topic} partition {prediction.partition} offset "
                f"{prediction.offset} was dropped by the topic's retention (its earliest "
                f"offset is now {earliest})"
            )
        consumer.seek(where, prediction.offset)
        record = _record_at(consumer, where, prediction.offset)
    finally:
        consumer.close()
    event = parse_event(
        record.key, record.value, record.timestamp, spec.model, spec.streaming.max_event_bytes
    )
    if not isinstance(event, Event):
        raise InputUnavailable(f"the event read back is not scoreable: {event.reason}")
    return features_table([event], spec.model)


def _record_at(consumer: Any, where: Any, offset: int) -> Any:
    records = consumer.poll(timeout_ms=SEEK_TIMEOUT_MS, max_records=1).get(where, [])
    if not records or records[0].offset != offset:
        raise InputUnavailable(
            f"{where.topic} partition {where.partition} offset {offset} could not be read "
            f"within {SEEK_TIMEOUT_MS / 1000:g} s"
        )
    return records[0]


def explain_prediction(
    registry: ModelRegistry,
    spec: PipelineSpec,
    prediction: BatchPrediction | StreamPrediction,
    row: pa.Table,
    background_rows: int,
) -> ExplainedPrediction:
    """Explain `row` with the version that scored it, served as production serves it."""
    from loopline.serving.cache import served_model
    from loopline.serving.explain import SEED, explain_rows, sample_rows

    version = registry.get(spec.name, prediction.model_version)
    holdout, where = version_holdout(registry, spec, version)
    background = sample_rows(holdout, background_rows, SEED + 1)
    serve = served_model(spec.name, version.version, lambda: registry)
    explanation = explain_rows(serve, spec.model, row, background)
    values = {name: row.column(name)[0].as_py() for name in spec.model.features.all}
    described = f"{background.num_rows} rows of v{version.version}'s holdout ({where})"
    return ExplainedPrediction(prediction, values, explanation, described)


def version_holdout(
    registry: ModelRegistry, spec: PipelineSpec, version: ModelVersion
) -> tuple[pa.Table, str]:
    """The holdout the version was judged on: its training run's table, else the same split
    recomputed from the validated objects its snapshot recorded (the split hashes each key,
    so it picks the same rows)."""
    from loopline.registry.layout import snapshot_table_key
    from loopline.spec.sections import FileFormat
    from loopline.storage.formats import decode

    store, bucket = registry.store, registry.bucket
    run_id = version.lineage.get("run_id", "")
    key = snapshot_table_key(spec.name, run_id, "holdout") if run_id else None
    if key and store.head(bucket, key) is not None:
        return decode(store.get(bucket, key), FileFormat.PARQUET), f"s3://{bucket}/{key}"
    return _recomputed_holdout(registry, spec, version)


def _recomputed_holdout(
    registry: ModelRegistry, spec: PipelineSpec, version: ModelVersion
) -> tuple[pa.Table, str]:
    from loopline.spec.sections import FileFormat
    from loopline.storage.formats import decode
    from loopline.training.snapshot import holdout_mask

    store, bucket = registry.store, registry.bucket
    keys = [str(o["key"]) for o in version.snapshot.get("objects", [])]
    present = [key for key in keys if store.head(bucket, key) is not None]
    if not present:
        raise InputUnavailable(
            f"v{version.version}'s holdout is gone: no training run table and none of the "
            f"{len(keys)} validated object(s) its snapshot read remain, so there is no "
            "background to explain against"
        )
    rows = pa.concat_tables(
        decode(store.get(bucket, key), FileFormat.PARQUET).select(
            [*spec.model.features.all, spec.data.key]
        )
        for key in present
    )
    fraction = float(version.snapshot.get("holdout_fraction") or spec.training.holdout_fraction)
    holdout = rows.filter(pa.array(holdout_mask(rows.column(spec.data.key), fraction)))
    if holdout.num_rows == 0:
        raise InputUnavailable(f"v{version.version}'s recomputed holdout holds no row")
    return holdout, f"recomputed from {len(present)} of its {len(keys)} snapshot object(s)"


def describe(explained: ExplainedPrediction) -> str:
    from loopline.serving.explain import ADDITIVITY_TOLERANCE

    prediction, explanation = explained.prediction, explained.explanation
    row = explanation.rows[0]
    width = max(len(name) for name in row.attributions)
    evals = f", max_evals {explanation.max_evals}" if explanation.max_evals else ""
    lines = [
        f"== {prediction.kind} prediction of {prediction.key}: score {prediction.score:.6f} "
        f"by model v{prediction.model_version}",
        f"explained with {explanation.method} ({explanation.library}{evals}, seed "
        f"{explanation.seed}) against {explained.background}",
        f"  {'feature':{width}}  {'value':>14}  attribution",
    ]
    lines += [
        f"  {name:{width}}  {_value(explained.row[name]):>14}  {value:+.6f}"
        for name, value in row.ranked()
    ]
    total = sum(row.attributions.values())
    check = "ok" if row.additivity_gap <= ADDITIVITY_TOLERANCE else "FAILED"
    lines += [
        f"base value (mean score over the background): {row.base_value:.6f}",
        f"base + sum of attributions = {row.base_value:.6f} {total:+.6f} = "
        f"{row.base_value + total:.6f}; score {row.score:.6f} (gap {row.additivity_gap:.1e}, "
        f"tolerance {ADDITIVITY_TOLERANCE:.0e}: {check})",
    ]
    if explained.stored_score_gap > SCORE_TOLERANCE:
        lines.append(
            f"MISMATCH: the stored score {prediction.score:.6f} differs from the version's "
            f"score of the row read back, {row.score:.6f}: the row is not what was scored"
        )
    return "\n".join(lines)


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


__all__ = ["describe", "explain_prediction", "input_row", "print_explanation", "version_holdout"]
