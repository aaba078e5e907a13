"""Mergeable statistics of a batch, per column: computed once, merged for any window.

Drift audits compare a window of batches with a reference. Re-reading every row of the window
for each audit makes its cost grow with the window; instead each batch gets a profile when it
is validated, and a window's profile is the sum of its batches' profiles, exact and in any
order (whylogs' idea, with sketches that reproduce Evidently's default drift tests):

- numbers: count, nulls, mean and squared deviations (merged with Chan's formula, stable),
  min, max, the distinct values while there are at most `FEW_VALUES` of them, and a
  log-bucket histogram (DDSketch's mapping): a value lies within `ALPHA` (relative) of its
  bucket's representative, and the buckets are the same for every batch, so they add;
- categories (strings): a count per value.

A profile is stored as a small Parquet table (one row per bucket or value, the rest in its
metadata).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ALPHA = 0.005  # relative accuracy of a bucket's representative value
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
MIN_MAGNITUDE = 1e-9  # smaller magnitudes share the zero bucket
_MIN_INDEX = math.floor(math.log(MIN_MAGNITUDE) / LOG_GAMMA)
FEW_VALUES = 20  # Evidently bins a number with at most 20 distinct values by value
SAMPLE_ROWS = 5000  # rows a profile keeps for reports
SAMPLE_PRIORITY = "__loopline_priority"


@dataclass
class NumericProfile:
    count: int = 0  # non-null values
    nulls: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    low: float = math.inf
    high: float = -math.inf
    few: dict[float, int] | None = field(default_factory=dict)  # None: more than FEW_VALUES
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default, as Evidently normalises by)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def distinct(self) -> int | None:
        """Distinct values, when there are few; None when more than `FEW_VALUES`."""
        return None if self.few is None else len(self.few)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(representative values, counts), ascending."""
        return bucket_values(self.keys), self.counts

    def merge(self, other: NumericProfile) -> NumericProfile:
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count if count else 0.0
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / count if count else 0.0
        keys, counts = _add(self.keys, self.counts, other.keys, other.counts)
        return NumericProfile(
            count,
            self.nulls + other.nulls,
            mean,
            m2,
            min(self.low, other.low),
            max(self.high, other.high),
            _merge_few(self.few, other.few),
            keys,
            counts,
        )


@dataclass
class CategoryProfile:
    nulls: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: CategoryProfile) -> CategoryProfile:
        counts = dict(self.counts)
        for value, n in other.counts.items():
            counts[value] = counts.get(value, 0) + n
        return CategoryProfile(self.nulls + other.nulls, counts)


ColumnProfile = NumericProfile | CategoryProfile


@dataclass
class BatchProfile:
    """The profile of a batch, or of several merged: rows, one profile per column, and a
    sample of rows (for reports) that merges into a sample of the union."""

    rows: int
    columns: dict[str, ColumnProfile]
    sample: pa.Table | None = None  # SAMPLE_ROWS rows of lowest priority, see sample_rows

    def merge(self, other: BatchProfile) -> BatchProfile:
        if self.columns.keys() != other.columns.keys():
            raise ValueError(
                f"profiles of different columns: {sorted(self.columns)} vs {sorted(other.columns)}"
            )
        return BatchProfile(
            self.rows + other.rows,
            {name: _merge_column(self.columns[name], other.columns[name]) for name in self.columns},
            _merge_samples(self.sample, other.sample),
        )

    def to_parquet(self) -> bytes:
        """The statistics (not the sample: see ``sample_parquet``)."""
        return _encode(self)

    def sample_parquet(self) -> bytes | None:
        return None if self.sample is None else _parquet(self.sample)

    @classmethod
    def from_parquet(cls, data: bytes, sample: bytes | None = None) -> BatchProfile:
        profile = _decode(data)
        if sample is not None:
            profile.sample = pq.read_table(pa.BufferReader(sample))
        return profile


def merge_all(profiles: Iterable[BatchProfile]) -> BatchProfile:
    merged: BatchProfile | None = None
    for profile in profiles:
        merged = profile if merged is None else merged.merge(profile)
    if merged is None:
        raise ValueError("no profile to merge")
    return merged


def merge_samples(samples: Iterable[pa.Table]) -> pa.Table | None:
    """The sample of the union of the batches whose samples these are (their bottom-k): what
    merging their profiles keeps, without reading their statistics."""
    merged: pa.Table | None = None
    for sample in samples:
        merged = _merge_samples(merged, sample)
    return merged


def profile_table(
    table: pa.Table, numeric: list[str], categorical: list[str], sample_seed: int | None = None
) -> BatchProfile:
    """The profile of `table`'s `numeric` and `categorical` columns, one pass each; with a
    `sample_seed`, also a sample of its rows (see ``sample_rows``)."""
    columns: dict[str, ColumnProfile] = {}
    for name in numeric:
        columns[name] = _profile_numbers(table.column(name))
    for name in categorical:
        columns[name] = _profile_categories(table.column(name))
    sample = None
    if sample_seed is not None:
        sample = sample_rows(table.select([*numeric, *categorical]), sample_seed)
    return BatchProfile(table.num_rows, columns, sample)


def sample_rows(table: pa.Table, seed: int, size: int = 0) -> pa.Table:
    """The `size` (default SAMPLE_ROWS) rows of lowest random priority (a "bottom-k" sample,
    seeded: the same batch gives the same sample). Every row of every batch draws its own
    uniform priority, so the k lowest of a window are among the k lowest of their own batch:
    the bottom-k of the batches' samples put together is exactly a uniform sample of the
    window."""
    size = size or SAMPLE_ROWS
    priority = np.random.default_rng(seed).random(table.num_rows)
    keep = np.arange(table.num_rows)
    if table.num_rows > size:
        keep = np.argpartition(priority, size)[:size]
    keep = keep[np.argsort(priority[keep], kind="stable")]
    sample = table.take(pa.array(keep))
    return sample.append_column(SAMPLE_PRIORITY, pa.array(priority[keep], pa.float64()))


# -------------------------------------------------------------------------- the buckets
def bucket_keys(values: np.ndarray) -> np.ndarray:
    """Each value's bucket: 0 for |x| < MIN_MAGNITUDE, else ±(1 + index above the smallest)."""
    magnitude = np.abs(values)
    keys = np.zeros(values.shape, np.int64)
    big = magnitude >= MIN_MAGNITUDE
    index = np.ceil(np.log(magnitude[big]) / LOG_GAMMA).astype(np.int64) - _MIN_INDEX
    keys[big] = np.where(values[big] > 0, index, -index)
    return keys


def bucket_values(keys: np.ndarray) -> np.ndarray:
    """The value each bucket stands for (within ALPHA of every value in it)."""
    index = np.abs(keys) + _MIN_INDEX
    magnitude = 2 * np.power(GAMMA, index.astype(np.float64)) / (GAMMA + 1)
    return np.where(keys == 0, 0.0, np.sign(keys) * magnitude)


def _profile_numbers(column: pa.ChunkedArray) -> NumericProfile:
    nulls = column.null_count
    values = pc.drop_null(column).to_numpy().astype(np.float64, copy=False)
    values = values[np.isfinite(values)]
    if not len(values):
        return NumericProfile(nulls=nulls)
    keys, counts = _bucket_counts(bucket_keys(values))
    mean = float(values.mean())
    return NumericProfile(
        len(values),
        nulls,
        mean,
        float(np.square(values - mean).sum()),
        float(values.min()),
        float(values.max()),
        _few(values),
        keys,
        counts,
    )


def _bucket_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Occupied buckets in ascending value order, and their counts (keys span a small range:
    a histogram by offset, not a sort)."""
    low = int(keys.min())
    counts = np.bincount(keys - low)
    occupied = np.flatnonzero(counts)
    unique = occupied.astype(np.int64) + low
    order = np.argsort(bucket_values(unique), kind="stable")
    return unique[order], counts[occupied][order].astype(np.int64)


def _few(values: np.ndarray) -> dict[float, int] | None:
    """Each distinct value's count, when there are at most FEW_VALUES (the first rows first:
    counting a million values to find they are many costs more than the rest of a profile)."""
    array = pa.array(values)
    if pc.count_distinct(array.slice(0, 10_000)).as_py() > FEW_VALUES:
        return None
    if pc.count_distinct(array).as_py() > FEW_VALUES:
        return None
    counted = pc.value_counts(array)
    return {
        float(v): int(n)
        for v, n in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        )
    }


def _profile_categories(column: pa.ChunkedArray) -> CategoryProfile:
    counts = pc.value_counts(pc.drop_null(column).cast(pa.string()))
    values = counts.field("values").to_pylist()
    times = counts.field("counts").to_pylist()
    return CategoryProfile(column.null_count, dict(zip(values, times, strict=True)))


def _add(
    keys_a: np.ndarray, counts_a: np.ndarray, keys_b: np.ndarray, counts_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate([keys_a, keys_b])
    unique, where = np.unique(keys, return_inverse=True)
    counts = np.zeros(len(unique), np.int64)
    np.add.at(counts, where, np.concatenate([counts_a, counts_b]))
    order = np.argsort(bucket_values(unique), kind="stable")
    return unique[order], counts[order]


def _merge_few(a: dict[float, int] | None, b: dict[float, int] | None) -> dict[float, int] | None:
    if a is None or b is None:
        return None
    merged = dict(a)
    for value, n in b.items():
        merged[value] = merged.get(value, 0) + n
    return merged if len(merged) <= FEW_VALUES else None


def _merge_samples(a: pa.Table | None, b: pa.Table | None) -> pa.Table | None:
    if a is None or b is None:
        return a if b is None else b
    both = pa.concat_tables([a, b], promote_options="permissive")
    order = np.argsort(both.column(SAMPLE_PRIORITY).to_numpy(), kind="stable")[:SAMPLE_ROWS]
    return both.take(pa.array(order))


def _merge_column(a: ColumnProfile, b: ColumnProfile) -> ColumnProfile:
    if type(a) is not type(b):
        raise ValueError(f"cannot merge a {type(a).__name__} with a {type(b).__name__}")
    return a.merge(b)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- storage
_SCHEMA = pa.schema(
    [("column", pa.string()), ("key", pa.int64()), ("value", pa.string()), ("count", pa.int64())]
)


def _encode(profile: BatchProfile) -> bytes:
    names: list[str] = []
    keys: list[int | None] = []
    values: list[str | None] = []
    counts: list[int] = []
    summary: dict[str, dict] = {}
    for name, column in profile.columns.items():
        if isinstance(column, NumericProfile):
            summary[name] = {
                "kind": "numeric",
                **{k: getattr(column, k) for k in ("count", "nulls", "mean", "m2", "low", "high")},
                "few": None if column.few is None else [[v, n] for v, n in column.few.items()],
            }
            names += [name] * len(column.keys)
            keys += column.keys.tolist()
            values += [None] * len(column.keys)
            counts += column.counts.tolist()
        else:
            summary[name] = {"kind": "category", "nulls": column.nulls}
            names += [name] * len(column.counts)
            keys += [None] * len(column.counts)
            values += list(column.counts)
            counts += list(column.counts.values())
    table = pa.table(
        {"column": names, "key": keys, "value": values, "count": counts}, schema=_SCHEMA
    )
    meta = {"rows": profile.rows, "columns": summary}
    return _parquet(table.replace_schema_metadata({"loopline.profile": json.dumps(meta)}))


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _rows_by_column(names: pa.ChunkedArray) -> dict[str, np.ndarray]:
    """Each column's row numbers (``_encode`` writes a column's rows together: one run each,
    found in one pass; a name seen in two runs still gets all its rows)."""
    encoded = names.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    dictionary = encoded.dictionary.to_pylist()
    rows: dict[str, np.ndarray] = {}
    if not len(codes):
        return rows
    starts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist()]
    for start, end in zip(starts, [*starts[1:], len(codes)], strict=True):
        name = dictionary[codes[start]]
        run = np.arange(start, end, dtype=np.int64)
        rows[name] = np.concatenate([rows[name], run]) if name in rows else run
    return rows


def _decode(data: bytes) -> BatchProfile:
    table = pq.read_table(pa.BufferReader(data))
    meta = json.loads(table.schema.metadata[b"loopline.profile"])
    # Rows by column without a Python loop over them: a profile holds thousands of buckets
    # per numeric column, and an audit decodes one profile per batch of its window.
    rows_of = _rows_by_column(table.column("column"))
    keys = table.column("key").to_numpy(zero_copy_only=False)
    values = table.column("value")
    counts = table.column("count").to_numpy()
    columns: dict[str, ColumnProfile] = {}
    for name, summary in meta["columns"].items():
        rows = rows_of.get(name, np.zeros(0, np.int64))
        if summary["kind"] == "numeric":
            few = summary["few"]
            columns[name] = NumericProfile(
                summary["count"],
                summary["nulls"],
                summary["mean"],
                summary["m2"],
                summary["low"],
                summary["high"],
                None if few is None else {float(v): int(n) for v, n in few},
                keys[rows].astype(np.int64) if len(rows) else np.zeros(0, np.int64),
                counts[rows].astype(np.int64) if len(rows) else np.zeros(0, np.int64),
            )
        else:
            found = values.take(pa.array(rows, pa.int64())).to_pylist()
            columns[name] = CategoryProfile(
                summary["nulls"], dict(zip(found, counts[rows].tolist(), strict=True))
            )
    return BatchProfile(meta["rows"], columns)
