"""Keys already validated: a replayed batch (an upstream retry landing the same rows again)
must not put them in the validated zone twice, or training and scoring count them twice.

The gate looks in the validated zone's ``dt=`` folders of the batch's own landing date and of
every date its rows carry (a replay lands under a later date, its rows keep theirs), plus
objects outside any ``dt=`` folder, reading only the key column of each object there. A task
validating many files keeps the key columns it read in a ``KeyCache``: a validated object is
written once, so each file of a group lists the folders again but reads only what is new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopline.data.validated import keys_dated
from loopline.data.window import partition_date
from loopline.spec.sections import DataSpec
from loopline.storage.objects import ObjectStore

SAMPLE = 3


@dataclass(frozen=True)
class Replayed:
    """The rows of a batch whose keys are already validated, and the rest."""

    count: int
    sample: list[str]  # a few of the keys, for the reason
    fresh: pa.Table  # the batch without them

    def reason(self, action: str) -> str:
        shown = ", ".join(self.sample) + (", ..." if self.count > len(self.sample) else "")
        return (
            f"duplicate_keys: {self.count} row(s) have a key already validated ({shown}); "
            f"a replayed batch? {action} (spec: validation.duplicate_keys)"
        )


class KeyCache:
    """The key column of validated objects already read, by object key."""

    def __init__(self) -> None:
        self._columns: dict[tuple[str, str], pa.Array] = {}

    def column(self, store: ObjectStore, data: DataSpec, key: str) -> pa.Array:
        cached = self._columns.get((data.bucket, key))
        if cached is None:
            source = pa.BufferReader(store.get(data.bucket, key))
            cached = pq.read_table(source, columns=[data.key]).column(0).combine_chunks()
            self._columns[(data.bucket, key)] = cached
        return cached


def replayed_rows(
    store: ObjectStore,
    data: DataSpec,
    landed_key: str,
    table: pa.Table,
    own_key: str,
    cache: KeyCache | None = None,
) -> Replayed:
    """The rows of `table` (landed as `landed_key`) whose key the validated zone holds in an
    object other than `own_key` (this batch's own, which a retried gate may have written)."""
    keys = table.column(data.key)
    days = _folders(data, landed_key, table)
    existing = _validated_keys(store, data, days, own_key, cache or KeyCache())
    if existing is None:
        return Replayed(0, [], table)
    seen = pc.is_in(keys, value_set=existing)
    count = pc.sum(seen).as_py() or 0
    if not count:
        return Replayed(0, [], table)
    sample = [str(k) for k in pc.filter(keys, seen).slice(0, SAMPLE).to_pylist()]
    return Replayed(count, sample, table.filter(pc.invert(seen)))


def _folders(data: DataSpec, landed_key: str, table: pa.Table) -> set[date]:
    """The validated dt= folders (as dates) where the batch's keys could already be."""
    days = set(pc.unique(pc.cast(table.column(data.timestamp), pa.date32())).to_pylist())
    if (landed := partition_date(landed_key)) is not None:
        days.add(landed)
    return days - {None}


def _validated_keys(
    store: ObjectStore, data: DataSpec, days: set[date], own_key: str, cache: KeyCache
) -> pa.Array | None:
    columns = [
        cache.column(store, data, key)
        for key in keys_dated(store, data, days.__contains__)
        # not its own output, nor one written before the validated zone was all Parquet
        if key != own_key and key.endswith(".parquet")
    ]
    if not columns:
        return None
    return pa.chunked_array(columns).combine_chunks()
