"""``loopline cost <pipeline>``: what the pipeline's tasks cost, per stage, per model version
and per run, with rows per second and the core-hours of a day of it."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module to build its parser: these load on use
    from loopline.records.cost import Totals
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

RUNS_SHOWN = 10
COLUMNS = (
    f"{'runs':>5} {'tries':>5} {'wall s':>9} {'CPU s':>9} {'GPU s':>7} {'peak MiB':>9} "
    f"{'read MiB':>9} {'wrote MiB':>9} {'rows in':>10} {'rows out':>10} {'rows/s':>9}"
)


def print_cost(args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore) -> int:
    from loopline.records import RecordStage, RecordStore
    from loopline.records.cost import summarize

    records = list(RecordStore(store, spec.data.bucket).records(spec.name))
    costs = [record for record in records if record.stage == RecordStage.COST]
    if not costs:
        print(f"{spec.name}: no task has recorded its cost yet (each task try records one)")
        return 0
    others = [r for r in records if r.stage not in (RecordStage.COST, RecordStage.FAILURE)]
    summary = summarize(costs, others)
    assert summary.first is not None and summary.last is not None  # there are costs
    print(
        f"{spec.name}: {len(costs)} task tries in {len(summary.by_run)} run(s), "
        f"{summary.first:%Y-%m-%d %H:%M} .. {summary.last:%Y-%m-%d %H:%M} UTC"
    )
    _table("per stage", summary.by_stage.items())
    if "stream" in summary.by_stage:
        _per_replica_minute(summary.by_stage["stream"])
    _table("per model version (the version a task trained, judged or scored with)",
           sorted(summary.by_version.items()))  # fmt: skip
    first = summary.first
    latest = sorted(summary.by_run.items(), key=lambda item: item[1].last or first)
    shown = [
        (f"{dag.rsplit('.', 1)[-1]} {run}", totals) for (dag, run), totals in latest[-RUNS_SHOWN:]
    ]
    _table(f"per run (the latest {len(shown)}, newest last)", shown, width=56)
    per_day = summary.core_hours_per_day()
    print(
        f"\na day of {spec.name}: {per_day:.3f} core-hours (the CPU seconds of every task, per "
        "day of the period recorded, counted as one day when shorter)"
    )
    return 0


def _per_replica_minute(stream: Totals) -> None:
    """Replicas run for days: what one of them costs per minute says more than the total."""
    minutes = stream.wall_seconds / 60
    if minutes <= 0:
        return
    print(
        f"\nstreaming replicas: {minutes:,.1f} replica-minutes recorded; per replica-minute "
        f"{stream.cpu_seconds / minutes:.2f} CPU s, {stream.rows_in / minutes:,.0f} events in, "
        f"{stream.rows_out / minutes:,.0f} predictions out, "
        f"{(stream.bytes_read + stream.bytes_written) / minutes / 2**20:.2f} MiB moved "
        f"(peak {stream.peak_rss_mib:.0f} MiB per replica)"
    )


def _table(title: str, rows: Iterable[tuple[str, Totals]], width: int = 20) -> None:
    listed = list(rows)
    print(f"\n{title}")
    if not listed:
        print("  none")
        return
    print(f"{'':{width}} {COLUMNS}")
    for name, totals in listed:
        print(_line(name[:width].ljust(width), totals))


def _line(name: str, totals: Totals) -> str:
    speed = totals.rows_per_second
    return (
        f"{name} {len(totals.runs):>5} {totals.tasks:>5} {totals.wall_seconds:>9.1f} "
        f"{totals.cpu_seconds:>9.1f} {totals.gpu_seconds:>7.1f} {totals.peak_rss_mib:>9.0f} "
        f"{totals.bytes_read / 2**20:>9.2f} {totals.bytes_written / 2**20:>9.2f} "
        f"{totals.rows_in:>10,} {totals.rows_out:>10,} {f'{speed:,.0f}' if speed else '-':>9}"
    )


__all__ = ["print_cost"]
