"""A replica's prediction log writer: every prediction it made (from Kafka, REST or gRPC), written
to the pipeline's bucket in bounded batches by a thread of its own, off the scoring path (the
layout and the reader are `loopline.data.prediction_log`).

The scoring path only appends references to what it already holds (the scored events, the
request's table and scores) to a buffer; the writer turns them into Parquet every
`flush_seconds` or `flush_rows`, one file per day, source and model version. If S3 cannot be
reached the buffer keeps what it holds up to `max_rows` and the writer tries again on its next
tick; beyond that the oldest predictions are dropped and counted (memory is bounded: a replica
must never stop scoring because its log cannot be written). What was dropped and the last error
are in the heartbeat.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.data.prediction_log import LOG_COLUMNS, log_key
from loopline.spec.sections import ModelSpec
from loopline.storage.objects import ObjectStore

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0
FLUSH_ROWS = 50_000
MAX_ROWS = 500_000  # buffered at most while S3 cannot be written


@dataclass(frozen=True)
class Logged:
    """One scoring call's predictions, as the scoring path handed them over."""

    source: str  # rest, grpc, kafka
    ids: Sequence[str]
    features: Callable[[], pa.Table]  # built by the writer, not on the scoring path
    scores: np.ndarray
    version: int
    latency_ms: Sequence[float]
    at: float  # epoch seconds

    @property
    def rows(self) -> int:
        return len(self.ids)


class PredictionLog:
    def __init__(
        self,
        store: Callable[[], ObjectStore],
        bucket: str,
        prefix: str,
        replica: str,
        model: ModelSpec,
        flush_seconds: float = FLUSH_SECONDS,
        flush_rows: int = FLUSH_ROWS,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self._store = store
        self._client: ObjectStore | None = None  # made on the writer's first put
        self.bucket, self.prefix, self.replica, self.model = bucket, prefix, replica, model
        self.flush_seconds, self.flush_rows, self.max_rows = flush_seconds, flush_rows, max_rows
        self._buffer: deque[Logged] = deque()
        self._buffered = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sequence = 0
        self.logged = self.dropped = self.files = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ the scoring path
    def add(self, entry: Logged) -> None:
        """Hand over one call's predictions (cheap: a reference appended under a lock)."""
        with self._lock:
            self._buffer.append(entry)
            self._buffered += entry.rows
            while self._buffered > self.max_rows and len(self._buffer) > 1:
                dropped = self._buffer.popleft()
                self._buffered -= dropped.rows
                self.dropped += dropped.rows
        if self._buffered >= self.flush_rows:
            self._wake.set()

    # ------------------------------------------------------------------ the writer
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is buffered (a draining replica's last predictions) and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def summary(self) -> dict[str, Any]:
        return {
            "logged": self.logged,
            "pending": self._buffered,
            "dropped": self.dropped,
            "files": self.files,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            taken, self._buffer = list(self._buffer), deque()
            self._buffered = 0
        if not taken:
            return
        try:
            for key, table in self._files(taken):
                self._put(key, table)
        except Exception as exc:  # S3 down, a bad row: kept for the next tick, reported
            log.warning("prediction log not written (kept for the next try): %s", exc)
            self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
            with self._lock:
                for entry in reversed(taken):
                    self._buffer.appendleft(entry)
                    self._buffered += entry.rows
            return
        self.last_error = None

    def _files(self, taken: list[Logged]) -> list[tuple[str, pa.Table]]:
        groups: dict[tuple[str, int, str], list[Logged]] = {}
        for entry in taken:
            day = datetime.fromtimestamp(entry.at, UTC).date().isoformat()
            groups.setdefault((day, entry.version, entry.source), []).append(entry)
        files = []
        for (day, version, source), entries in groups.items():
            self._sequence += 1
            first_ms = int(entries[0].at * 1000)
            name = f"{self.replica}-{first_ms}-{self._sequence}"
            key = log_key(self.prefix, datetime.fromisoformat(day).date(), version, source, name)
            files.append((key, self._table(entries)))
        return files

    def _table(self, entries: list[Logged]) -> pa.Table:
        rows = [entry.rows for entry in entries]
        answered_ms = [int(entry.at * 1000) for entry in entries]
        columns = {
            "id": pa.array([i for entry in entries for i in entry.ids], pa.string()),
            "source": pa.array(np.repeat([e.source for e in entries], rows), pa.string()),
            "model_version": pa.array(np.repeat([e.version for e in entries], rows), pa.int64()),
            "score": pa.array(np.concatenate([e.scores for e in entries]), pa.float32()),
            "latency_ms": pa.array([v for e in entries for v in e.latency_ms], pa.float32()),
            "at": pa.array(np.repeat(answered_ms, rows), pa.timestamp("ms", tz="UTC")),
        }
        table = pa.table(columns, schema=LOG_COLUMNS)
        features = pa.concat_tables([entry.features() for entry in entries])
        for name in features.column_names:
            table = table.append_column(name, features.column(name))
        return table

    def _put(self, key: str, table: pa.Table) -> None:
        if self._client is None:
            self._client = self._store()
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self._client.put_new(self.bucket, key, sink.getvalue())
        self.logged += table.num_rows
        self.files += 1
