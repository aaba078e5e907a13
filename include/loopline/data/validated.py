"""The validated objects of a window, and their rows inside it, recorded exactly.

Objects under a ``dt=YYYY-MM-DD`` folder outside the window are not even read; the rows kept
are those whose timestamp falls in ``[start, end)``. Every object read is recorded with its
sha256 and row count, so a run that used them can be reproduced or audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from loopline.data.reading import UnreadableFile, conform, read_batch
from loopline.data.window import RunWindow, partition_date
from loopline.spec.sections import DataSpec
from loopline.storage.objects import ObjectStore, sha256_hex


@dataclass(frozen=True)
class ObjectRead:
    key: str
    sha256: str
    rows: int  # rows of the object inside the window


@dataclass(frozen=True)
class WindowRows:
    """The validated rows of a window (the spec's columns, in order) and where they came from."""

    table: pa.Table | None  # None when no object holds a row of the window
    objects: list[ObjectRead]


def validated_keys(store: ObjectStore, data: DataSpec, first: date, last: date) -> Iterator[str]:
    """Validated objects whose dt= folder is within [first, last]; those without one too."""
    return keys_dated(store, data, lambda day: first <= day <= last)


def keys_dated(store: ObjectStore, data: DataSpec, keep: Callable[[date], bool]) -> Iterator[str]:
    """Validated objects whose dt= folder's date `keep` accepts; those without one too."""
    for key in sorted(store.list_keys(data.bucket, data.validated_prefix)):
        day = partition_date(key)
        if day is not None and not keep(day):
            continue
        yield key


@dataclass(frozen=True)
class Coverage:
    """What the validated zone holds, by its dt= folders: for messages about empty windows."""

    objects: int
    first_day: date | None
    last_day: date | None
    undated: int  # objects outside any dt= folder

    def describe(self) -> str:
        if not self.objects:
            return "the validated zone is empty"
        dated = self.objects - self.undated
        span = f"{dated} object(s) dated {self.first_day} .. {self.last_day}" if dated else ""
        undated = f"{self.undated} object(s) without a dt= folder" if self.undated else ""
        return "the validated zone holds " + " and ".join(part for part in (span, undated) if part)


def coverage(store: ObjectStore, data: DataSpec) -> Coverage:
    keys = list(store.list_keys(data.bucket, data.validated_prefix))
    days = sorted(day for key in keys if (day := partition_date(key)) is not None)
    first, last = (days[0], days[-1]) if days else (None, None)
    return Coverage(len(keys), first, last, len(keys) - len(days))


def window_keys(store: ObjectStore, data: DataSpec, window: RunWindow) -> Iterator[str]:
    """The validated objects of `window`: those under its dt= folders, and undated ones."""
    return validated_keys(store, data, window.first_day, window.last_day)


def read_window(store: ObjectStore, data: DataSpec, window: RunWindow) -> WindowRows:
    """The validated rows whose timestamp is in the window, with every object recorded."""
    start, end = window.start, window.end
    tables, objects = [], []
    for key in window_keys(store, data, window):
        raw = store.get(data.bucket, key)
        try:
            table = read_batch(raw, key, data.columns, data.format)
        except UnreadableFile as exc:  # validated files were read once; this one changed
            raise ValueError(f"s3://{data.bucket}/{key} cannot be read: {exc}") from exc
        table = in_window(table, data.timestamp, start, end)
        if table.num_rows:
            tables.append(conform(table, data.columns))
            objects.append(ObjectRead(key, sha256_hex(raw), table.num_rows))
    return WindowRows(pa.concat_tables(tables) if tables else None, objects)


def in_window(table: pa.Table, column: str, start: datetime, end: datetime) -> pa.Table:
    """The rows of `table` whose `column` is in [start, end)."""
    utc = pa.timestamp("us", tz="UTC")  # what read_batch casts every timestamp column to
    times = table.column(column).cast(utc)
    keep = pc.and_(
        pc.greater_equal(times, pa.scalar(start, type=utc)),
        pc.less(times, pa.scalar(end, type=utc)),
    )
    return table.filter(keep)
