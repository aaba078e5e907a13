"""Key segments from run ids: one id, one key. Two ids that differ only in characters S3 keys
avoid (``:`` against ``+``) or beyond the 200th used to share one, so one run could overwrite
another's training snapshot and records."""

from __future__ import annotations

import re

import pytest
from loopline.records import RecordStage, RecordStore
from loopline.registry.layout import training_run_prefix
from loopline.storage.keys import MAX_SEGMENT, safe_segment

SEGMENT = re.compile(r"[A-Za-z0-9._=-]{1,200}")

LOOK_ALIKES = [
    "manual__2026-11-30T10:00:00+00:00",  # what Airflow names a run triggered by hand
    "manual__2026-11-30T10+00+00:00:00",  # REST callers' run ids, chosen to collide with it
    "manual__2026-11-30T10~00~00~00~00",
    "manual__2026-11-30T10::00::00::00::00",
    "manual__2026-11-30T10_00_00_00_00",  # safe, but it is the real run's key: hashed
    "_manual__2026-11-30T10_00_00_00_00.",
]


def test_ids_that_used_to_share_a_segment_get_their_own() -> None:
    segments = [safe_segment(run_id) for run_id in LOOK_ALIKES]
    assert len(set(segments)) == len(LOOK_ALIKES)
    assert all(SEGMENT.fullmatch(segment) for segment in segments)


def test_ids_that_differ_only_past_the_cut_get_their_own() -> None:
    long_ids = ["x" * 240 + "a", "x" * 240 + "b", "x" * MAX_SEGMENT + "a"]
    segments = [safe_segment(run_id) for run_id in long_ids]
    assert len(set(segments)) == 3
    assert all(SEGMENT.fullmatch(segment) for segment in segments)


@pytest.mark.parametrize(
    "run_id", ["manual__1", "scheduled__2026-11-30", "train-run-1", "x" * MAX_SEGMENT, "a=b.c"]
)
def test_a_safe_id_keeps_its_key_so_existing_data_still_resolves(run_id: str) -> None:
    assert safe_segment(run_id) == run_id


@pytest.mark.parametrize(
    ("run_id", "key"),
    [
        ("manual__2026-11-30T10:00:00+00:00", "manual__2026-11-30T10_00_00_00_00"),
        ("scheduled__2026-11-30T00:00:00+00:00", "scheduled__2026-11-30T00_00_00_00_00"),
        ("asset_triggered__2026-11-30T10:00:00.123456+00:00", None),
    ],
)
def test_an_airflow_run_id_keeps_the_key_it_always_had(run_id: str, key: str | None) -> None:
    old = re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id).strip("_.")[:200]  # the former rule
    assert safe_segment(run_id) == old == (key or old)


@pytest.mark.parametrize("victim", ["manual__2026-11-30T10:00:00+00:00", "manual__9:x"])
def test_an_id_cannot_pose_as_another_ids_segment(victim: str) -> None:
    segment = safe_segment(victim)
    assert safe_segment(segment) != segment  # the attacker picks the victim's segment as id


def test_an_id_with_nothing_usable_is_refused() -> None:
    with pytest.raises(ValueError, match="no character usable"):
        safe_segment(":/:")


def test_snapshot_and_record_keys_of_look_alike_runs_differ() -> None:
    prefixes = {training_run_prefix("fraud", run_id) for run_id in LOOK_ALIKES}
    records = RecordStore(store=None, bucket="loopline")  # type: ignore[arg-type]
    keys = {records.key("fraud", RecordStage.SNAPSHOT, run_id) for run_id in LOOK_ALIKES}
    assert len(prefixes) == len(keys) == len(LOOK_ALIKES)
