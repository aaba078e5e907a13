"""The training snapshot: which validated rows a run trains and judges on, recorded exactly.

The window is by the spec's timestamp column, ending when the run was due; the rows come from
``loopline.data`` (objects outside the window are not even read). The record lists every
object read with its sha256 and row count, so the run can be reproduced or audited.

The holdout is chosen by a stable hash of the key column, not by position: a row is in the
holdout in every run that sees it, so a candidate and its champion are compared on rows
neither trained on (when the champion came from an earlier window of the same data).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.data.validated import coverage, read_window
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.registry.layout import training_run_prefix
from loopline.spec.model import FileFormat, PipelineSpec
from loopline.storage.formats import CONTENT_TYPES, decode, encode
from loopline.storage.objects import ObjectStore, sha256_hex

log = logging.getLogger(__name__)

HOLDOUT_BUCKETS = 10_000


class EmptySnapshotError(Exception):
    """No validated rows in the window: nothing to train on."""


@dataclass(frozen=True)
class SnapshotRecord:
    window_start: str
    window_end: str
    objects: list[dict[str, object]] = field(default_factory=list)  # key, sha256, rows
    rows: int = 0
    train_rows: int = 0
    holdout_rows: int = 0
    holdout_fraction: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    train: pa.Table
    holdout: pa.Table
    record: SnapshotRecord


def assemble_snapshot(
    store: ObjectStore, spec: PipelineSpec, window_end: datetime, window_days: int | None = None
) -> Snapshot:
    """Read the validated rows of the window and split them into train and holdout."""
    days = window_days or spec.training.window_days
    window_end = window_end.astimezone(UTC)
    window_start = window_end - timedelta(days=days)
    window = read_window(store, spec.data, window_start, window_end)
    if window.table is None:
        held = coverage(store, spec.data).describe()
        raise EmptySnapshotError(
            f"no validated rows for {spec.name} between {window_start:%Y-%m-%d %H:%M} and "
            f"{window_end:%Y-%m-%d %H:%M} UTC (window_days {days}) under "
            f"s3://{spec.data.bucket}/{spec.data.validated_prefix}; {held}. For data with "
            "past dates, run with window_end (a backfill) or a wider window_days"
        )
    rows, objects = window.table, [asdict(read) for read in window.objects]
    in_holdout = holdout_mask(rows.column(spec.data.key), spec.training.holdout_fraction)
    train, holdout = rows.filter(pa.array(~in_holdout)), rows.filter(pa.array(in_holdout))
    record = SnapshotRecord(
        window_start=window_start.isoformat(),
        window_end=window_end.isoformat(),
        objects=objects,
        rows=rows.num_rows,
        train_rows=train.num_rows,
        holdout_rows=holdout.num_rows,
        holdout_fraction=spec.training.holdout_fraction,
    )
    log.info(
        "snapshot: %d objects, %d rows (%d train, %d holdout)",
        len(objects),
        rows.num_rows,
        train.num_rows,
        holdout.num_rows,
    )
    return Snapshot(train, holdout, record)


def holdout_mask(keys: pa.ChunkedArray | pa.Array, fraction: float) -> np.ndarray:
    """True for the rows whose key hashes into the holdout; the same key, the same answer."""
    hashes = pd.util.hash_array(np.asarray(keys.to_pandas(), dtype=object))
    return (hashes % HOLDOUT_BUCKETS) < round(fraction * HOLDOUT_BUCKETS)


def run_prefix(spec: PipelineSpec, run_id: str) -> str:
    """Where one training run keeps its snapshot, so that each of its tasks can be retried."""
    return training_run_prefix(spec.name, run_id)


def save_snapshot(
    store: ObjectStore, spec: PipelineSpec, snapshot: Snapshot, run: RunContext
) -> StageRecord:
    """Keep the run's train and holdout tables, and its snapshot record, for the next tasks."""
    bucket, prefix = spec.data.bucket, run_prefix(spec, run.run_id)
    outputs = []
    for name, table in (("train", snapshot.train), ("holdout", snapshot.holdout)):
        body = encode(table, FileFormat.PARQUET)
        store.put(bucket, f"{prefix}{name}.parquet", body, CONTENT_TYPES[FileFormat.PARQUET])
        uri = f"s3://{bucket}/{prefix}{name}.parquet"
        outputs.append(ObjectRef(uri=uri, sha256=sha256_hex(body), rows=table.num_rows))
    snapshot_record = snapshot.record
    record = run.record(
        RecordStage.SNAPSHOT,
        "taken",
        inputs=[
            ObjectRef(uri=f"s3://{bucket}/{o['key']}", sha256=o["sha256"], rows=o["rows"])
            for o in snapshot_record.objects
        ],
        outputs=outputs,
        numbers={
            "rows": snapshot_record.rows,
            "train_rows": snapshot_record.train_rows,
            "holdout_rows": snapshot_record.holdout_rows,
        },
        payload=snapshot_record.to_dict(),
    )
    RecordStore(store, bucket).write(record)
    return record


def load_saved_snapshot(store: ObjectStore, spec: PipelineSpec, run_id: str) -> Snapshot:
    """The snapshot a run's snapshot task saved."""
    bucket, prefix = spec.data.bucket, run_prefix(spec, run_id)
    record = RecordStore(store, bucket).read(spec.name, RecordStage.SNAPSHOT, run_id)
    train = decode(store.get(bucket, prefix + "train.parquet"), FileFormat.PARQUET)
    holdout = decode(store.get(bucket, prefix + "holdout.parquet"), FileFormat.PARQUET)
    return Snapshot(train, holdout, SnapshotRecord(**record.payload))
