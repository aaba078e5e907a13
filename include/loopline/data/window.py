"""The run window: the days of data a run reads, the same for training, drift, batch scoring
and the drift reference.

A window is ``[end - days, end)``: it ends where the run was due (or at the ``window_end``
Param of a backfill) and reaches back `days` days. Its validated objects are those under the
``dt=`` folders of `first_day` .. `last_day`; their rows are kept when their timestamp lies in
``[start, end)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PARTITION_PATTERN = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")


def date_partition(day: date | str) -> str:
    """The folder name of one day's objects: ``dt=YYYY-MM-DD`` (Hive-style, as Spark writes)."""
    text = day if isinstance(day, str) else day.isoformat()
    return f"dt={text}"


def partition_date(key: str) -> date | None:
    """The day of the ``dt=`` folder `key` sits under; None outside one."""
    match = PARTITION_PATTERN.search(key)
    return date.fromisoformat(match.group(1)) if match else None


def as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is read as UTC (what the form's field says)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunWindow:
    """``[end - days, end)`` in UTC."""

    end: datetime
    days: int

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"a window spans at least one day, not {self.days}")
        object.__setattr__(self, "end", as_utc(self.end))

    @classmethod
    def ending(cls, window_end: datetime | None, due: datetime | None, days: int) -> RunWindow:
        """The window of a run: ending at `window_end` (a backfill) when given, else when the
        run was due (`due`: a scheduled run's tick, a manual or REST run's trigger time), else
        now. Not the data interval's end: Airflow infers one for a manual run that ends at the
        schedule's previous tick, and a run without a logical date has none."""
        return cls(window_end or due or datetime.now(UTC), days)

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last day the window touches (the end itself is outside it)."""
        return (self.end - timedelta(microseconds=1)).date()

    def before(self, days: int) -> RunWindow:
        """The `days` days just before this window (the drift reference's)."""
        return RunWindow(self.start, days)

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC ({self.days} d)"
