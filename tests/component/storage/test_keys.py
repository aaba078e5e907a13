"""Key segments from run ids, on the real S3 server: a run whose id looks like another's
(differing only in characters S3 keys avoid) cannot overwrite that run's training snapshot.
The segments themselves are unit-tested (tests/unit/storage/test_keys.py)."""

from __future__ import annotations


def test_a_look_alike_run_cannot_overwrite_a_runs_snapshot(s3) -> None:
    from datetime import UTC, datetime, timedelta

    from loopline.data.window import RunWindow
    from loopline.records import RunContext
    from loopline.training.snapshot import assemble_snapshot, load_saved_snapshot, save_snapshot
    from support.validated_data import DEMO, demo_bucket, land_validated

    store, now = demo_bucket(s3), datetime(2026, 11, 23, 12, tzinfo=UTC)
    window = RunWindow(now, DEMO.training.window_days)
    land_validated(store, now - timedelta(days=1), 500, seed=1)
    # Airflow's id for a run triggered by hand, and a safe id that is that run's old key.
    real, look_alike = "manual__2026-11-30T10:00:00+00:00", "manual__2026-11-30T10_00_00_00_00"
    real_snapshot = assemble_snapshot(store, DEMO, window)
    save_snapshot(store, DEMO, real_snapshot, RunContext(DEMO.name, real))
    land_validated(store, now - timedelta(hours=2), 700, seed=2)  # the look-alike sees more
    save_snapshot(
        store, DEMO, assemble_snapshot(store, DEMO, window), RunContext(DEMO.name, look_alike)
    )

    again = load_saved_snapshot(store, DEMO, real)
    assert again.record.rows == 500 and again.holdout.equals(real_snapshot.holdout)
