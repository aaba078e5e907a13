"""Batch profiles: exact where they can be, within their stated accuracy elsewhere, and the
same however a window's batches are split and merged."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from loopline.data.profiles import (
    ALPHA,
    BatchProfile,
    CategoryProfile,
    NumericProfile,
    bucket_keys,
    bucket_values,
    merge_all,
    profile_table,
)


def table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows)
    amount[::50] = np.nan  # NaN is not a value: it is left out, like a null
    return pa.table(
        {
            "amount": pa.array(amount, pa.float64()).fill_null(0.0),
            "delta": pa.array(rng.normal(0, 2, rows), pa.float32()),
            "flag": pa.array(rng.integers(0, 3, rows), pa.int64()),
            "channel": pa.array(
                [None if i % 97 == 0 else ["web", "pos", "app"][i % 3] for i in range(rows)]
            ),
        }
    )


NUMERIC, CATEGORICAL = ["amount", "delta", "flag"], ["channel"]


def test_every_value_lies_within_alpha_of_its_buckets_representative() -> None:
    values = np.concatenate(
        [np.geomspace(1e-8, 1e8, 10_000), -np.geomspace(1e-8, 1e8, 10_000), [0.0, 1e-12]]
    )
    represented = bucket_values(bucket_keys(values))
    big = np.abs(values) >= 1e-9
    assert np.all(np.abs(represented[big] - values[big]) <= ALPHA * np.abs(values[big]) * 1.0001)
    assert np.all(represented[~big] == 0.0)
    assert np.all(np.sign(represented[big]) == np.sign(values[big]))


def test_a_profile_counts_moments_and_values_exactly() -> None:
    batch = table(5000, seed=1)
    profile = profile_table(batch, NUMERIC, CATEGORICAL)
    delta = batch.column("delta").to_numpy().astype(np.float64)
    column = profile.columns["delta"]
    assert isinstance(column, NumericProfile)
    assert column.count == 5000 and column.nulls == 0
    assert math.isclose(column.mean, delta.mean(), rel_tol=1e-12)
    assert math.isclose(column.std, float(np.std(delta)), rel_tol=1e-9)
    assert column.counts.sum() == 5000 and column.few is None
    flag = profile.columns["flag"]
    assert isinstance(flag, NumericProfile) and flag.distinct() == 3
    channel = profile.columns["channel"]
    assert isinstance(channel, CategoryProfile)
    assert channel.nulls == len(range(0, 5000, 97)) and channel.count + channel.nulls == 5000


def test_merging_batches_gives_the_profile_of_the_whole_window() -> None:
    whole = table(6000, seed=2)
    parts = [whole.slice(start, 1000) for start in range(0, 6000, 1000)]
    merged = merge_all(profile_table(part, NUMERIC, CATEGORICAL) for part in reversed(parts))
    direct = profile_table(whole, NUMERIC, CATEGORICAL)
    assert merged.rows == direct.rows == 6000
    for name in NUMERIC:
        a, b = merged.columns[name], direct.columns[name]
        assert (a.count, a.nulls, a.low, a.high, a.few) == (b.count, b.nulls, b.low, b.high, b.few)
        assert math.isclose(a.mean, b.mean, rel_tol=1e-12)
        assert math.isclose(a.m2, b.m2, rel_tol=1e-9)
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.counts, b.counts)
    assert merged.columns["channel"] == direct.columns["channel"]


def test_a_profile_survives_its_parquet_form() -> None:
    profile = profile_table(table(3000, seed=3), NUMERIC, CATEGORICAL)
    again = BatchProfile.from_parquet(profile.to_parquet())
    assert again.rows == profile.rows
    for name, column in profile.columns.items():
        other = again.columns[name]
        if isinstance(column, NumericProfile):
            assert np.array_equal(column.keys, other.keys)
            assert np.array_equal(column.counts, other.counts)
            assert (column.mean, column.m2, column.few) == (other.mean, other.m2, other.few)
        else:
            assert column == other


def test_an_all_null_column_profiles_empty_and_profiles_of_other_columns_do_not_merge() -> None:
    empty = pa.table({"x": pa.array([None, None], pa.float64())})
    profile = profile_table(empty, ["x"], [])
    assert profile.columns["x"].count == 0 and profile.columns["x"].nulls == 2
    BatchProfile.from_parquet(profile.to_parquet())  # infinite min/max round-trip
    other = profile_table(pa.table({"y": [1.0]}), ["y"], [])
    with pytest.raises(ValueError, match="profiles of different columns"):
        profile.merge(other)
    with pytest.raises(ValueError, match="no profile to merge"):
        merge_all([])


def test_merged_samples_are_exactly_the_windows_lowest_priority_rows() -> None:
    from loopline.data.profiles import SAMPLE_PRIORITY, SAMPLE_ROWS

    parts = [table(3000, seed=10 + i) for i in range(4)]
    profiles = [
        profile_table(part, NUMERIC, CATEGORICAL, sample_seed=i) for i, part in enumerate(parts)
    ]
    stored = [BatchProfile.from_parquet(p.to_parquet(), p.sample_parquet()) for p in profiles]
    merged = merge_all(stored).sample
    priorities = np.concatenate([np.random.default_rng(i).random(3000) for i in range(len(parts))])
    expected = np.sort(priorities)[:SAMPLE_ROWS]
    assert merged.num_rows == SAMPLE_ROWS
    assert np.array_equal(merged.column(SAMPLE_PRIORITY).to_numpy(), expected)
    deltas = np.concatenate([p.column("delta").to_numpy() for p in parts])
    order = np.argsort(priorities, kind="stable")[:SAMPLE_ROWS]
    assert np.array_equal(merged.column("delta").to_numpy(), deltas[order])
