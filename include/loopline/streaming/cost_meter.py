"""A replica's cost, minute by minute: the same ``cost`` records every Airflow task leaves.

A replica runs for days, so one record at its end would say nothing until it stops (and
nothing at all if it is killed). Every `every` seconds a thread of its own writes what the
replica used in that minute: wall and CPU seconds, peak memory, events in and predictions
out, and the bytes it moved (Kafka values read and written, S3 objects). The scoring loop
only bumps counters; the write (an S3 PUT) happens on this thread, so a slow store never
stalls a batch. A failed write is logged and its minute folded into the next one: the meter
must not take the replica down, and nothing it measured is dropped.

The records belong to the replica's own run (``stream:<member>@<host>:<started>``) under the
DAG id ``<pipeline>.stream``, so ``loopline cost`` shows a ``stream`` stage beside the
DAGs' stages, with rows per second and core-hours per day.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from loopline.records import RecordStore
from loopline.records.cost import Usage, record_task_cost
from loopline.records.envelope import RunContext

log = logging.getLogger(__name__)

COST_EVERY_SECONDS = 60.0


@dataclass
class Moved:
    """What the scoring loop moved so far (bumped under the GIL, read by the meter)."""

    events: int = 0
    predictions: int = 0
    kafka_bytes_read: int = 0
    kafka_bytes_written: int = 0


class CostMeter(threading.Thread):
    """Writes the replica's ``cost`` record for every `every` seconds until stopped; the
    last, shorter period is written on `close`."""

    def __init__(
        self,
        records: RecordStore,
        pipeline: str,
        member: str,
        moved: Moved,
        model_version: Callable[[], int],
        every: float = COST_EVERY_SECONDS,
    ) -> None:
        super().__init__(name="cost-meter", daemon=True)
        started = datetime.now(UTC)
        self.context = RunContext(
            pipeline=pipeline,
            run_id=f"stream:{member}@{socket.gethostname()}:{started:%Y%m%dT%H%M%S}",
            dag_id=f"{pipeline}.stream",
            task_id=member,
            try_number=1,
        )
        self.records, self.every, self.model_version = records, every, model_version
        self.moved = moved  # the scoring loop's counters
        self._halt = threading.Event()
        self._writing = threading.Lock()  # `close` may flush while a slow write still runs
        self._since, self._moved_since = Usage.now(), Moved(**vars(moved))
        self._minute = 0

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.flush()

    def close(self) -> None:
        """Stop, and write the period since the last record."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=self.every + 5)
        self.flush()

    def flush(self) -> None:
        """Write one record of what was used since the last one written."""
        with self._writing:
            self._flush()

    def _flush(self) -> None:
        now, moved = Usage.now(), Moved(**vars(self.moved))
        used = now.since(self._since) | self._rows_and_bytes(moved)
        # The table's read/written columns count every byte moved, Kafka's with S3's.
        used["bytes_read"] += used["kafka_bytes_read"]
        used["bytes_written"] += used["kafka_bytes_written"]
        self._minute += 1
        try:
            record_task_cost(
                self.records,
                self.context,
                "ok",
                used,
                subject=f"{self.context.task_id}.minute{self._minute:06d}",
                model_version=self.model_version(),  # the version serving at the period's end
                measured_from="the previous minute's record (the replica's start for the first)",
            )
        except Exception:  # the next record covers this period too: nothing measured is lost
            log.exception("the cost record of minute %d was not written", self._minute)
            return
        self._since, self._moved_since = now, moved

    def _rows_and_bytes(self, moved: Moved) -> dict[str, float]:
        before = self._moved_since
        return {
            "rows_in": moved.events - before.events,
            "rows_out": moved.predictions - before.predictions,
            "kafka_bytes_read": moved.kafka_bytes_read - before.kafka_bytes_read,
            "kafka_bytes_written": moved.kafka_bytes_written - before.kafka_bytes_written,
        }
