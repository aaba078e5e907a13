"""What each task costs: wall and CPU seconds, peak memory, GPU seconds, bytes and rows.

A task's usage is measured around it (`Usage.now` before and after, in the task's own
process: Airflow runs each task in a process of its own) and kept as a ``cost`` record with
the task's numbers. CPU counts the process and its waited-for children (spark-submit's JVM,
subprocesses); bytes are what the process moved through ``ObjectStore`` (server-side copies
move none); GPU seconds are the time a stage said it held a GPU (`note_gpu_seconds`). Rows
come from the stage records of the same run and task, read back by `rows_moved`.

`summarize` turns cost records (with their stage records) into what ``loopline cost`` shows:
per run, per stage and per model version, rows per second, and core-hours per day.
"""

from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from loopline.records.envelope import RecordStage, RunContext, StageRecord
from loopline.records.store import RecordStore
from loopline.storage.objects import TRAFFIC

_GPU_SECONDS = [0.0]  # this process's, noted by the stage that held the GPU


def note_gpu_seconds(seconds: float) -> None:
    """A stage held a GPU for `seconds` (training on one): counted in its task's cost."""
    _GPU_SECONDS[0] += seconds


@dataclass(frozen=True)
class Usage:
    """This process's usage so far."""

    wall: float
    cpu_seconds: float
    peak_rss_mib: float
    bytes_read: int
    bytes_written: int
    gpu_seconds: float

    @classmethod
    def now(cls) -> Usage:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS
        return cls(
            wall=time.monotonic(),
            cpu_seconds=sum((own.ru_utime, own.ru_stime, children.ru_utime, children.ru_stime)),
            peak_rss_mib=max(own.ru_maxrss, children.ru_maxrss) * scale / 2**20,
            bytes_read=TRAFFIC.bytes_read,
            bytes_written=TRAFFIC.bytes_written,
            gpu_seconds=_GPU_SECONDS[0],
        )

    def since(self, start: Usage) -> dict[str, float]:
        """The numbers of a cost record: what was used between `start` and this."""
        return {
            "wall_seconds": round(self.wall - start.wall, 3),
            "cpu_seconds": round(self.cpu_seconds - start.cpu_seconds, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),  # the process's peak, task included
            "bytes_read": self.bytes_read - start.bytes_read,
            "bytes_written": self.bytes_written - start.bytes_written,
            "gpu_seconds": round(self.gpu_seconds - start.gpu_seconds, 3),
        }


def record_task_cost(
    records: RecordStore,
    run: RunContext,
    outcome: str,
    used: dict[str, float],
    *,
    map_index: int | None = None,
    measured_from: str = "the try's start",
    subject: str | None = None,
    model_version: int | None = None,
) -> StageRecord:
    """Write the ``cost`` record of one try of `run`'s task (`used`: `Usage.since`), or of
    one period of a long-running process (`subject` names the period)."""
    ended = datetime.now(UTC)
    run = replace(run, started_at=ended - timedelta(seconds=used.get("wall_seconds", 0.0)))
    task = run.task_id if map_index is None else f"{run.task_id}[{map_index}]"
    record = run.record(
        RecordStage.COST,
        outcome,
        subject=subject or f"{task}.try{run.try_number}",
        numbers=used,
        payload={"measured_from": measured_from, "map_index": map_index}
        | ({"model_version": model_version} if model_version is not None else {}),
    )
    records.write(record)
    return record


def rows_moved(record: StageRecord) -> tuple[int, int]:
    """(rows in, rows out) of a stage record: its inputs' and outputs' rows where it lists
    them, else its ``rows`` number in and its ``accepted_rows`` (validation) out."""
    rows_in = [ref.rows for ref in record.inputs if ref.rows is not None]
    rows_out = [ref.rows for ref in record.outputs if ref.rows is not None]
    numbers = record.numbers
    return (
        int(sum(rows_in) if rows_in else numbers.get("rows", 0)),
        int(sum(rows_out) if rows_out else numbers.get("accepted_rows", 0)),
    )


@dataclass
class Totals:
    """Summed cost of some tasks."""

    tasks: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0
    # Rows per run: the most any one task of the run moved (a run's snapshot task and its
    # train task both read the same rows: counting both would double them). A long-running
    # process's periods each moved rows of their own: each period is a key of its own.
    run_rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)
    last: datetime | None = None  # when the latest of its tasks ended

    @property
    def rows_in(self) -> int:
        return sum(rows for rows, _ in self.run_rows.values())

    @property
    def rows_out(self) -> int:
        return sum(rows for _, rows in self.run_rows.values())

    def add(self, cost: StageRecord, rows: tuple[int, int]) -> None:
        numbers = cost.numbers
        self.tasks += 1
        self.runs.add(cost.run_id)
        key = f"{cost.run_id}/{cost.subject}" if is_metered(cost) else cost.run_id
        seen_in, seen_out = self.run_rows.get(key, (0, 0))
        self.run_rows[key] = (max(seen_in, rows[0]), max(seen_out, rows[1]))
        self.last = max(filter(None, (self.last, cost.ended_at)))
        self.wall_seconds += numbers.get("wall_seconds", 0.0)
        self.cpu_seconds += numbers.get("cpu_seconds", 0.0)
        self.gpu_seconds += numbers.get("gpu_seconds", 0.0)
        self.peak_rss_mib = max(self.peak_rss_mib, numbers.get("peak_rss_mib", 0.0))
        self.bytes_read += int(numbers.get("bytes_read", 0))
        self.bytes_written += int(numbers.get("bytes_written", 0))

    @property
    def rows_per_second(self) -> float | None:
        rows = max(self.rows_in, self.rows_out)
        return rows / self.wall_seconds if rows and self.wall_seconds > 0 else None


@dataclass
class CostSummary:
    by_run: dict[tuple[str, str], Totals]  # (dag id, run id)
    by_stage: dict[str, Totals]  # the DAG's stage: validate, train, batch_score...
    by_version: dict[str, Totals]  # the model version the task used or made
    first: datetime | None
    last: datetime | None

    def core_hours_per_day(self) -> float | None:
        """CPU hours of every task, per day of the period the records cover (at least a
        day: a pipeline seen for an hour is not extrapolated to 24)."""
        if self.first is None or self.last is None:
            return None
        days = max((self.last - self.first) / timedelta(days=1), 1.0)
        cpu = sum(totals.cpu_seconds for totals in self.by_stage.values())
        return cpu / 3600 / days


def summarize(costs: Iterable[StageRecord], stage_records: Iterable[StageRecord]) -> CostSummary:
    """Cost records grouped by run, stage and model version, each with the rows its task's
    stage records say it moved."""
    by_task: dict[tuple[str, str | None], list[StageRecord]] = defaultdict(list)
    for record in stage_records:
        by_task[(record.run_id, record.task_id)].append(record)
    summary = CostSummary(defaultdict(Totals), defaultdict(Totals), defaultdict(Totals), None, None)
    for cost in costs:
        records = by_task.get((cost.run_id, cost.task_id), [])
        if is_metered(cost):
            rows = (int(cost.numbers["rows_in"]), int(cost.numbers.get("rows_out", 0)))
        else:
            rows = _summed(rows_moved(record) for record in records)
        stage = (cost.dag_id or "?").rsplit(".", 1)[-1]
        summary.by_run[(cost.dag_id or "?", cost.run_id)].add(cost, rows)
        summary.by_stage[stage].add(cost, rows)
        if version := _model_version([cost, *records]):
            summary.by_version[version].add(cost, rows)
        summary.first = min(filter(None, (summary.first, cost.started_at)))
        summary.last = max(filter(None, (summary.last, cost.ended_at)))
    return summary


def is_metered(cost: StageRecord) -> bool:
    """A period of a long-running process (a streaming replica), which counts its own rows,
    not one try of a task, whose rows its stage records say."""
    return "rows_in" in cost.numbers


def _summed(pairs: Iterable[tuple[int, int]]) -> tuple[int, int]:
    total_in = total_out = 0
    for rows_in, rows_out in pairs:
        total_in, total_out = total_in + rows_in, total_out + rows_out
    return total_in, total_out


def _model_version(records: list[StageRecord]) -> str | None:
    """The version a task scored with or registered, from its stage records."""
    for record in records:
        payload, numbers = record.payload, record.numbers
        for value in (payload.get("model_version"), payload.get("version")):
            if isinstance(value, int | str) and not isinstance(value, bool) and value != "":
                return f"v{value}"
        if record.stage == "training" and "version" in numbers:
            return f"v{int(numbers['version'])}"
    return None


__all__ = [
    "CostSummary",
    "Totals",
    "Usage",
    "is_metered",
    "note_gpu_seconds",
    "record_task_cost",
    "rows_moved",
    "summarize",
]
