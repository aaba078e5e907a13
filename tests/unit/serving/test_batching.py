"""The adaptive batcher's waiting rule: a batch waits for requests the server holds, and only
for those. Pure asyncio and a scoring thread; tests/component/serving runs it behind REST."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pyarrow as pa
from loopline.serving.batching import AdaptiveBatcher

DELAY_S = 0.5  # long, so that a wait shows plainly


class Counting:
    """Scores each row 1.0 and records the rows of each model call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, rows: pa.Table) -> np.ndarray:
        self.calls.append(rows.num_rows)
        return np.ones(rows.num_rows, np.float32)


def one_row() -> pa.Table:
    return pa.table({"amount": pa.array([1.0], pa.float32())})


def test_a_lone_request_is_scored_without_waiting_for_company() -> None:
    model = Counting()

    async def lone() -> float:
        batcher = AdaptiveBatcher(64, DELAY_S, in_flight=lambda: 1)
        batcher.switch_to(model, 1)
        started = time.perf_counter()
        await batcher.score(one_row())
        await batcher.close()
        return time.perf_counter() - started

    assert asyncio.run(lone()) < DELAY_S / 5
    assert model.calls == [1]


def test_requests_the_server_holds_are_waited_for_and_scored_together() -> None:
    """Three requests in flight, the first queued alone: the batch waits for the other two."""
    model = Counting()

    async def three() -> None:
        batcher = AdaptiveBatcher(64, DELAY_S, in_flight=lambda: 3)
        batcher.switch_to(model, 1)

        async def later() -> None:
            await asyncio.sleep(0.05)  # still being read when the batch starts
            await batcher.score(one_row())

        await asyncio.gather(batcher.score(one_row()), later(), later())
        await batcher.close()

    asyncio.run(three())
    assert model.calls == [3]


def test_without_a_count_a_batch_always_waits_its_delay() -> None:
    model = Counting()

    async def waits() -> float:
        batcher = AdaptiveBatcher(64, 0.1)
        batcher.switch_to(model, 1)
        started = time.perf_counter()
        await batcher.score(one_row())
        await batcher.close()
        return time.perf_counter() - started

    assert asyncio.run(waits()) >= 0.1
    assert model.calls == [1]
