"""Adaptive batching of online requests: concurrent requests are scored in one model call.

The first request waiting starts a batch; the batch takes every request already queued and
waits up to `max_delay_s` for more, up to `max_rows` rows (Triton's dynamic batcher: a request
never joins a batch it would overflow; one larger than `max_rows` is scored alone). While the
model scores one batch the next one forms, so under load batches grow by themselves and with
a single client each request is scored at once (a delay of 0 never waits). Given the number of
requests the server holds (`in_flight`), a batch waits only while some of them are not in it
yet: a lone request is not kept waiting for company that has not arrived (measured: the 2 ms
delay was half of what the model added to a lone request's latency).

Scoring runs on one thread of its own (the model's ops use the cores; two calls at once only
contend). If a batch's call fails, each request in it is scored alone, so one request the
model cannot score gets its own error and the others their scores, as a Kafka replica
dead-letters only the event that fails.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from loopline.serving.protocol import BadRequest, NotReady, Scored, check_finite

Scorer = Callable[[pa.Table], np.ndarray]
BATCH_WINDOW = 1000  # batches the mean batch size is taken over


@dataclass(frozen=True)
class ServedVersion:
    scorer: Scorer
    version: int


@dataclass
class _Waiting:
    rows: pa.Table
    answer: asyncio.Future[Scored]
    queued_at: float = field(default_factory=time.perf_counter)


class AdaptiveBatcher:
    """Scores requests in batches on one event loop; `switch_to` changes the model between
    two batches (a roll fails no request: each batch is scored whole by one version)."""

    def __init__(
        self, max_rows: int, max_delay_s: float, in_flight: Callable[[], int] | None = None
    ) -> None:
        self.max_rows, self.max_delay_s = max_rows, max_delay_s
        self._in_flight = in_flight  # requests the server holds, this batch's included
        self.served: ServedVersion | None = None
        self.batch_sizes: deque[int] = deque(maxlen=BATCH_WINDOW)
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._held: _Waiting | None = None  # the request that would have overflowed a batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self._task: asyncio.Task[None] | None = None

    def switch_to(self, scorer: Scorer, version: int) -> None:
        """Serve `version` from the next batch on (thread-safe: one reference assignment)."""
        self.served = ServedVersion(scorer, version)

    @property
    def version(self) -> int | None:
        return None if self.served is None else self.served.version

    async def score(self, rows: pa.Table) -> Scored:
        """The scores of `rows`, batched with whatever else is waiting."""
        if self.served is None:
            raise NotReady("no model is loaded yet")
        if self._queue is None:  # created on the loop that serves it
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")
        answer: asyncio.Future[Scored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiting(rows, answer))
        return await answer

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            served = self.served
            if served is None:  # not possible once started; kept for the type checker
                continue
            self.batch_sizes.append(sum(w.rows.num_rows for w in batch))
            await self._score(batch, served)

    async def _next_batch(self) -> list[_Waiting]:
        assert self._queue is not None
        first = self._held or await self._queue.get()
        self._held = None
        batch, rows = [first], first.rows.num_rows
        deadline = time.perf_counter() + self.max_delay_s
        while rows < self.max_rows:
            waiting = self._take_queued()
            if waiting is None and self._others_on_the_way(len(batch)):
                waiting = await self._wait_for_more(deadline)
            if waiting is None:
                break
            if rows + waiting.rows.num_rows > self.max_rows:
                self._held = waiting  # first in the next batch
                break
            batch.append(waiting)
            rows += waiting.rows.num_rows
        return batch

    def _others_on_the_way(self, in_batch: int) -> bool:
        """Whether requests the server holds are not in this batch yet (still being read or
        answered): worth waiting for. Without a count, always (Triton's rule)."""
        return self._in_flight is None or self._in_flight() > in_batch

    def _take_queued(self) -> _Waiting | None:
        assert self._queue is not None
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def _wait_for_more(self, deadline: float) -> _Waiting | None:
        assert self._queue is not None
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), left)
        except TimeoutError:
            return None

    async def _score(self, batch: list[_Waiting], served: ServedVersion) -> None:
        loop = asyncio.get_running_loop()
        table = batch[0].rows if len(batch) == 1 else pa.concat_tables([w.rows for w in batch])
        try:
            scores = await loop.run_in_executor(self._executor, _scores_of, served, table)
        except Exception as exc:
            if len(batch) == 1:
                _answer_error(batch[0], exc)
            else:  # whose fault? each alone
                for waiting in batch:
                    await self._score([waiting], served)
            return
        start = 0
        for waiting in batch:
            end = start + waiting.rows.num_rows
            _answer(waiting, Scored(scores[start:end], served.version))
            start = end


def _scores_of(served: ServedVersion, table: pa.Table) -> np.ndarray:
    scores = np.asarray(served.scorer(table), dtype=np.float32).reshape(-1)
    if scores.shape[0] != table.num_rows:
        raise RuntimeError(f"the model gave {scores.shape[0]} scores for {table.num_rows} rows")
    return scores


def _answer(waiting: _Waiting, scored: Scored) -> None:
    if waiting.answer.done():  # the caller went away (a cancelled request)
        return
    try:
        check_finite(scored.scores)
    except BadRequest as exc:
        waiting.answer.set_exception(exc)
        return
    waiting.answer.set_result(scored)


def _answer_error(waiting: _Waiting, exc: Exception) -> None:
    if not waiting.answer.done():
        reason = f"the model could not score this request: {type(exc).__name__}: {str(exc)[:300]}"
        waiting.answer.set_exception(BadRequest(reason))
