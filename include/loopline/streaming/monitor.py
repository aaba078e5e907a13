"""The monitor: what it sees of a consumer group, the limits it scales within, and one pass
(replace the dead, then scale)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline.runtime.files import write_atomically
from loopline.spec.sections import StreamingSpec
from loopline.streaming.deployment import Deployment, Outcome
from loopline.streaming.lag import group_lag
from loopline.streaming.scaling import Limits, Observation, ScalingDecision, decide_scale


def scaling_limits(streaming: StreamingSpec, partitions: int | None = None) -> Limits:
    """The spec's limits; `partitions`: the topic's real count, which caps the replicas of a
    Kafka-only pipeline (a topic created earlier, or by someone else, can have fewer than the
    spec says). A pipeline that serves online (`streaming.serve`) scales on its endpoint's
    concurrency too, up to `replicas.max` (see `Limits.cap`)."""
    return Limits(
        minimum=streaming.replicas.min,
        maximum=streaming.replicas.max,
        partitions=partitions or streaming.partitions,
        lag_per_replica=streaming.lag_per_replica,
        p99_target_ms=streaming.p99_latency_ms,
        scale_in_after_seconds=streaming.scale_in_after_seconds,
        target_concurrency=streaming.serve.target_concurrency if streaming.serve else None,
    )


@dataclass
class MonitorPass:
    """One pass of the monitor: dead replicas replaced, the scaling decision, the scaling."""

    replaced: Outcome
    decision: ScalingDecision
    scaled: Outcome | None
    problems: list[str]  # replicas dying on records or crash-looping, and where


def monitor_once(
    deployment: Deployment,
    bootstrap: str,
    streaming: StreamingSpec,
    version: int,
    window: ScalingWindow,
    now: float | None = None,
) -> MonitorPass:
    """Replace dead replicas (dynamic scaling), then scale on lag, latency and, for a pipeline
    that serves online, its endpoint's concurrency (auto-scaling)."""
    problems = deployment.problems()  # before replace_dead restarts a slot that gave up
    replaced = deployment.replace_dead(version)
    now = time.time() if now is None else now
    seen = observe(bootstrap, streaming, deployment, now)
    limits = scaling_limits(streaming, seen.partitions)
    decision = decide_scale(seen, limits, window.recent(now))
    window.add(now, decision.recommended)
    scaled = None
    if decision.desired != decision.current:
        scaled = deployment.scale(version, decision.desired)
    return MonitorPass(replaced, decision, scaled, problems)


def observe(
    bootstrap: str, streaming: StreamingSpec, deployment: Deployment, now: float
) -> Observation:
    """Committed lag of the group, and the worst p99 of the replicas in each window; for the
    replicas that serve online (an ``endpoint`` block in their heartbeat), the endpoint's
    concurrency in each window summed over them, and its worst p99 (None where none does)."""
    lag = group_lag(bootstrap, streaming.consumer_group, streaming.input_topic)
    beats = deployment.heartbeats()
    latencies = [beat.get("latency_ms") or {} for beat in beats]
    endpoints = [block for beat in beats if isinstance(block := beat.get("endpoint"), dict)]
    endpoint_latencies = [block.get("latency_ms") or {} for block in endpoints]
    return Observation(
        at=now,
        current=deployment.replica_count(),
        partitions=len(lag.partitions),
        total_lag=lag.total,
        p99_stable_ms=_worst(latencies, "p99_60s"),
        p99_panic_ms=_worst(latencies, "p99_6s"),
        concurrency_stable=_total(endpoints, "concurrency_60s"),
        concurrency_panic=_total(endpoints, "concurrency_6s"),
        endpoint_p99_stable_ms=_worst(endpoint_latencies, "p99_60s"),
        endpoint_p99_panic_ms=_worst(endpoint_latencies, "p99_6s"),
    )


class ScalingWindow:
    """The recommended counts of the last `seconds` (the scale-in stabilisation window), kept
    beside the replicas' state (a small file: the monitor reads it every minute, so not the
    whole record history)."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path, self.seconds = path, seconds

    def recent(self, now: float) -> list[tuple[float, int]]:
        if not self.path.exists():
            return []
        entries = json.loads(self.path.read_text())
        return [(at, desired) for at, desired in entries if now - at <= self.seconds]

    def add(self, now: float, desired: int) -> None:
        entries = [*self.recent(now), (now, desired)]
        write_atomically(self.path, json.dumps(entries).encode())


def scaling_window(state: Path, pipeline: str, streaming: StreamingSpec) -> ScalingWindow:
    """The pipeline's window, beside its replicas' state (``<state>/streaming/<pipeline>/``)."""
    path = state / "streaming" / pipeline / "scaling-window.json"
    return ScalingWindow(path, streaming.scale_in_after_seconds)


def _worst(latencies: list[dict[str, Any]], key: str) -> float | None:
    values = [value for entry in latencies if (value := entry.get(key)) is not None]
    return max(values) if values else None


def _total(blocks: list[dict[str, Any]], key: str) -> float | None:
    """The sum over replicas of each one's `key` (a mean over a window); None where none has it."""
    values = [value for block in blocks if (value := block.get(key)) is not None]
    return round(sum(values), 3) if values else None
