"""The "window" drift reference: the days before the current window, never its first day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopline.data.profile_store import ProfileStore
from loopline.data.window import RunWindow
from loopline.drift.reference import window_reference
from loopline.storage.formats import decode
from support.validated_data import DEMO, demo_bucket, land_validated


def test_the_reference_ends_the_day_before_the_current_windows_first_day(s3) -> None:
    store = demo_bucket(s3)
    profiles = ProfileStore(store, DEMO.data)
    current = RunWindow(datetime(2026, 11, 23, 12, tzinfo=UTC), 1)  # from the 22nd, 12:00
    for back, rows in ((1, 100), (2, 200), (8, 300), (9, 400)):  # 22nd, 21st, 15th, 14th
        key = land_validated(
            store, datetime(2026, 11, 23, tzinfo=UTC) - timedelta(days=back), rows, seed=back
        )
        table = decode(store.get(DEMO.data.bucket, key), "parquet")
        profiles.write(key, profiles.profile(table, key))

    reference = window_reference(store, DEMO, current)  # reference_window_days: 7

    # The 15th .. 21st: not the 22nd, where the current window starts (mid-day).
    assert "2 validated batch(es) dated 2026-11-15 .. 2026-11-21" in reference.description
    assert reference.profile.rows == 500
