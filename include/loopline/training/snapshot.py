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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.data.validated import coverage, read_window
from loopline.data.window import RunWindow
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.registry.layout import SnapshotTable, snapshot_table_key
from loopline.spec.sections import FileFormat, PipelineSpec
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
    objects: list[dict[str, Any]] = field(default_factory=list)  # key, sha256, rows
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


def assemble_snapshot(store: ObjectStore, spec: PipelineSpec, window: RunWindow) -> Snapshot:
    """Read the validated rows of the window and split them into train and holdout (the
    window's days: the run's window_days Param, else the spec's training.window_days)."""
    read = read_window(store, spec.data, window)
    if read.table is None:
        held = coverage(store, spec.data).describe()
        raise EmptySnapshotError(
            f"no validated rows for {spec.name} between {window.start:%Y-%m-%d %H:%M} and "
            f"{window.end:%Y-%m-%d %H:%M} UTC (window_days {window.days}) under "
            f"s3://{spec.data.bucket}/{spec.data.validated_prefix}; {held}. For data with "
            "past dates, run with window_end (a backfill) or a wider window_days"
        )
    rows, objects = read.table, [asdict(each) for each in read.objects]
    in_holdout = holdout_mask(rows.column(spec.data.key), spec.training.holdout_fraction)
    train, holdout = rows.filter(pa.array(~in_holdout)), rows.filter(pa.array(in_holdout))
    record = SnapshotRecord(
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
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


def save_snapshot(
    store: ObjectStore, spec: PipelineSpec, snapshot: Snapshot, run: RunContext
) -> StageRecord:
    """Keep the run's train and holdout tables, and its snapshot record, for the next tasks."""
    bucket = spec.data.bucket
    outputs = []
    tables: dict[SnapshotTable, pa.Table] = {"train": snapshot.train, "holdout": snapshot.holdout}
    for name, table in tables.items():
        body = encode(table, FileFormat.PARQUET)
        key = snapshot_table_key(spec.name, run.run_id, name)
        store.put(bucket, key, body, CONTENT_TYPES[FileFormat.PARQUET])
        uri = f"s3://{bucket}/{key}"
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
    bucket = spec.data.bucket
    record = RecordStore(store, bucket).read(spec.name, RecordStage.SNAPSHOT, run_id)
    train, holdout = (
        decode(store.get(bucket, snapshot_table_key(spec.name, run_id, name)), FileFormat.PARQUET)
        for name in ("train", "holdout")
    )
    return Snapshot(train, holdout, SnapshotRecord(**record.payload))
