"""What the monitor sees of a consumer group, and the limits it scales within."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loopline.spec.model import StreamingSpec
from loopline.streaming.consumer import write_atomically
from loopline.streaming.lag import group_lag
from loopline.streaming.scaling import STABILISATION_SECONDS, Limits, Observation


def scaling_limits(streaming: StreamingSpec) -> Limits:
    return Limits(
        minimum=streaming.replicas.min,
        maximum=streaming.replicas.max,
        partitions=streaming.partitions,
        lag_per_replica=streaming.lag_per_replica,
        p99_target_ms=streaming.p99_latency_ms,
    )


def observe(bootstrap: str, streaming: StreamingSpec, backend: Any, now: float) -> Observation:
    """Committed lag of the group, and the worst p99 of the replicas in each window."""
    lag = group_lag(bootstrap, streaming.consumer_group, streaming.input_topic)
    beats = [backend.status(slot).heartbeat for slot in backend.slots()]
    latencies = [beat.get("latency_ms", {}) for beat in beats if beat]
    return Observation(
        at=now,
        current=len(backend.slots()),
        total_lag=lag.total,
        p99_stable_ms=_worst(latencies, "p99_60s"),
        p99_panic_ms=_worst(latencies, "p99_6s"),
    )


class ScalingWindow:
    """The desired counts of the last STABILISATION_SECONDS, kept beside the replicas' state
    (a small file: the monitor reads it every minute, so not the whole record history)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def recent(self, now: float) -> list[tuple[float, int]]:
        if not self.path.exists():
            return []
        entries = json.loads(self.path.read_text())
        return [(at, desired) for at, desired in entries if now - at <= STABILISATION_SECONDS]

    def add(self, now: float, desired: int) -> None:
        entries = [*self.recent(now), (now, desired)]
        write_atomically(self.path, json.dumps(entries).encode())


def _worst(latencies: list[dict[str, Any]], key: str) -> float | None:
    values = [value for entry in latencies if (value := entry.get(key)) is not None]
    return max(values) if values else None
