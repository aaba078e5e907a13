"""Landed files packed into validation tasks: few tasks, balanced by bytes, within limits."""

from __future__ import annotations

import pytest
from loopline.validation.grouping import Landed, group_files, group_label

MIB = 2**20


def files(*sizes: int) -> list[Landed]:
    return [Landed(f"landing/f{i:03d}.csv", size) for i, size in enumerate(sizes)]


def test_small_files_fill_as_few_tasks_as_the_file_limit_allows() -> None:
    groups = group_files(files(*[1000] * 200), max_files=50, max_bytes=256 * MIB)
    assert [len(g) for g in groups] == [50, 50, 50, 50]
    assert [k for g in groups for k in g] == [f.key for f in files(*[1000] * 200)]  # in order


def test_groups_are_balanced_not_a_full_ones_and_a_remainder() -> None:
    groups = group_files(files(*[1000] * 120), max_files=50, max_bytes=256 * MIB)
    assert [len(g) for g in groups] == [40, 40, 40]


def test_bytes_limit_splits_big_files_and_a_huge_file_goes_alone() -> None:
    groups = group_files(files(100 * MIB, 100 * MIB, 100 * MIB, 100 * MIB), 50, 256 * MIB)
    assert [len(g) for g in groups] == [2, 2]
    huge = group_files(files(1, 1, 1000 * MIB, 1, 1), 50, 256 * MIB)
    assert ["landing/f002.csv"] in huge
    assert sorted(k for g in huge for k in g) == [f.key for f in files(1, 1, 1, 1, 1)]
    assert len(huge) <= 4 and all(len(g) <= 50 for g in huge)


def test_many_small_files_beside_a_big_one_still_respect_the_file_limit() -> None:
    sizes = [300 * MIB, *[10] * 99]
    groups = group_files(files(*sizes), max_files=10, max_bytes=256 * MIB)
    assert all(len(g) <= 10 for g in groups)
    assert sum(len(g) for g in groups) == 100


def test_nothing_landed_is_no_group_and_bad_limits_are_refused() -> None:
    assert group_files([], 50, MIB) == []
    empty_files = group_files(files(0, 0, 0), 2, MIB)
    assert sorted(len(g) for g in empty_files) == [1, 2]
    with pytest.raises(ValueError, match="must be >= 1"):
        group_files(files(1), 0, MIB)


def test_a_group_is_named_by_its_first_and_last_file() -> None:
    assert group_label(["landing/dt=1/a.csv"], "landing/") == "dt=1/a.csv"
    label = group_label(["landing/a.csv", "landing/b.csv", "landing/c.csv"], "landing/")
    assert label == "a.csv … c.csv (3 files)"
