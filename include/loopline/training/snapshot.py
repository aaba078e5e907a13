"""The training snapshot: which validated rows a run trains and judges on, recorded exactly.

The window is by the spec's timestamp column, ending at the run's data interval end. Files
under a ``dt=YYYY-MM-DD`` folder outside the window are not even read. The record lists every
object read with its sha256 and row count, so the run can be reproduced or audited.

The holdout is chosen by a stable hash of the key column, not by position: a row is in the
holdout in every run that sees it, so a candidate and its champion are compared on rows
neither trained on (when the champion came from an earlier window of the same data).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopline.spec.model import FileFormat, PipelineSpec
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.validation.reading import UnreadableFile, read_batch

log = logging.getLogger(__name__)

PARTITION = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")
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
    tables, objects = [], []
    for key in validated_keys(store, spec, window_start.date(), window_end.date()):
        data = store.get(spec.data.bucket, key)
        try:
            table = read_batch(data, key, spec.data.columns, spec.data.format)
        except UnreadableFile as exc:  # validated files were read once; this one changed
            raise ValueError(f"s3://{spec.data.bucket}/{key} cannot be read: {exc}") from exc
        table = _in_window(table, spec.data.timestamp, window_start, window_end)
        if table.num_rows:
            tables.append(table.select(spec.data.column_names))
            objects.append({"key": key, "sha256": sha256_hex(data), "rows": table.num_rows})
    if not tables:
        raise EmptySnapshotError(
            f"no validated rows for {spec.name} between {window_start:%Y-%m-%d %H:%M} and "
            f"{window_end:%Y-%m-%d %H:%M} under s3://{spec.data.bucket}/"
            f"{spec.data.validated_prefix}"
        )
    rows = pa.concat_tables(tables)
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


def validated_keys(store: ObjectStore, spec: PipelineSpec, first: date, last: date):
    """Validated objects whose dt= folder is within [first, last]; those without one too."""
    for key in sorted(store.list_keys(spec.data.bucket, spec.data.validated_prefix)):
        match = PARTITION.search(key)
        if match and not first <= date.fromisoformat(match.group(1)) <= last:
            continue
        yield key


def _in_window(table: pa.Table, column: str, start: datetime, end: datetime) -> pa.Table:
    utc = pa.timestamp("us", tz="UTC")  # what read_batch casts every timestamp column to
    times = table.column(column).cast(utc)
    keep = pc.and_(
        pc.greater_equal(times, pa.scalar(start, type=utc)),
        pc.less(times, pa.scalar(end, type=utc)),
    )
    return table.filter(keep)


def run_prefix(spec: PipelineSpec, run_id: str, models_prefix: str = "models/") -> str:
    """Where one training run keeps its snapshot, so that each of its tasks can be retried."""
    safe = re.sub(r"[^A-Za-z0-9._=-]", "_", run_id)
    return f"{models_prefix}{spec.name}/runs/{safe}/"


def save_snapshot(store: ObjectStore, spec: PipelineSpec, snapshot: Snapshot, prefix: str) -> None:
    from loopline.storage.formats import CONTENT_TYPES, encode

    bucket, parquet = spec.data.bucket, CONTENT_TYPES[FileFormat.PARQUET]
    store.put(bucket, prefix + "train.parquet", encode(snapshot.train, "parquet"), parquet)
    store.put(bucket, prefix + "holdout.parquet", encode(snapshot.holdout, "parquet"), parquet)
    record = json.dumps(snapshot.record.to_dict(), indent=2).encode()
    store.put(bucket, prefix + "snapshot.json", record, "application/json")


def load_saved_snapshot(store: ObjectStore, spec: PipelineSpec, prefix: str) -> Snapshot:
    from loopline.storage.formats import decode

    bucket = spec.data.bucket
    record = SnapshotRecord(**json.loads(store.get(bucket, prefix + "snapshot.json")))
    train = decode(store.get(bucket, prefix + "train.parquet"), "parquet")
    holdout = decode(store.get(bucket, prefix + "holdout.parquet"), "parquet")
    return Snapshot(train, holdout, record)
