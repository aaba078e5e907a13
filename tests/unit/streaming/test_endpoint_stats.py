"""The endpoint's concurrency is Knative's: requests in flight, weighted by time, over the
stable (60 s) and panic (6 s) windows; what the auto-scaler divides by its target."""

from __future__ import annotations

import pytest
from loopline.streaming import endpoint
from loopline.streaming.endpoint import RequestStats


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_concurrency_is_time_weighted_over_each_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(1_000_000.0)
    monkeypatch.setattr(endpoint.time, "time", clock.time)
    stats = RequestStats()
    stats.arrive()  # two requests in flight for 30 s, then one for 6 s more
    stats.arrive()
    clock.now += 30
    stats.leave(30_000.0)
    clock.now += 6
    stats.leave(36_000.0)
    clock.now += 1  # the last whole second closed
    summary = stats.summary(batch_sizes=endpoint.deque())
    assert summary["concurrency_60s"] == pytest.approx((2 * 30 + 6) / 60, abs=1e-3)
    assert summary["concurrency_6s"] == pytest.approx(5 / 6, abs=1e-3)  # one, for 5 of 6 s
    assert summary["requests"] == 2 and summary["in_flight"] == 0
    clock.now += 60
    assert stats.summary(batch_sizes=endpoint.deque())["concurrency_60s"] == 0.0
