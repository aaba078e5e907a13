"""How many replicas a pipeline's consumer group should run: one decision, with its numbers.

Lag: replicas = clamp(ceil(total lag / lag per replica), min, min(max, partitions)), KEDA's
formula, with the cap applied to the *target*, before the dead band: KEDA applies its 10%
tolerance after capping and can stall at partitions - 1 (keda#2908). Here the capped target is
compared with the current count, and a target within the dead band of the current count (and
no other signal) is "no change".

Latency, Knative's two windows: the p99 over a stable window (60 s) above the target scales out
by one; the p99 over a short panic window (6 s) above twice the target scales out at once to
the lag target or one more, whichever is larger.

Direction: scale-out happens at once; scale-in only after every desired count of the
stabilisation window (``streaming.scale_in_after_seconds``, the HPA's 300 s
default) was at or below the new count, so a short lull
does not shed replicas a surge needs again a minute later. Never beyond the topic's partition
count (an extra replica would sit idle), never below `min`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

STABILISATION_SECONDS = 300.0
STABLE_WINDOW_SECONDS = 60.0
PANIC_WINDOW_SECONDS = 6.0
DEAD_BAND = 0.1  # a lag target within 10% of the current count changes nothing


@dataclass(frozen=True)
class Limits:
    minimum: int
    maximum: int
    partitions: int
    lag_per_replica: int  # what one replica is expected to keep up with
    p99_target_ms: float
    scale_in_after_seconds: float = STABILISATION_SECONDS

    @property
    def cap(self) -> int:
        return max(min(self.maximum, self.partitions), self.minimum)

    def clamp(self, count: int) -> int:
        """`count` within ``minimum..cap``: the one bound on replicas, for what the monitor
        decides and for what a deploy or scale asks (so the monitor never undoes it at once)."""
        return min(max(count, self.minimum), self.cap)


@dataclass(frozen=True)
class Observation:
    """What the monitor saw: total committed lag and the replicas' p99 in each window."""

    at: float  # seconds (monotonic or epoch, as long as one clock is used)
    current: int
    total_lag: int
    p99_stable_ms: float | None = None
    p99_panic_ms: float | None = None
    partitions: int | None = None  # the topic's, as the broker describes it


@dataclass(frozen=True)
class ScalingDecision:
    current: int
    desired: int
    reasons: list[str]
    # What lag and latency asked for before the stabilisation window held a scale-in: what
    # the window keeps (keeping `desired` instead would let a held count hold itself forever).
    recommended: int
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def action(self) -> str:
        if self.desired > self.current:
            return "scale_out"
        return "scale_in" if self.desired < self.current else "no_change"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action}


def lag_target(total_lag: int, limits: Limits) -> int:
    """KEDA's replica count for a lag, capped by max and by the partition count."""
    wanted = math.ceil(total_lag / limits.lag_per_replica) if total_lag > 0 else limits.minimum
    return limits.clamp(wanted)


def replicas_to_run(asked: int | None, running: int, limits: Limits) -> int:
    """How many replicas a deploy or scale runs: the count asked, else as many as run now (at
    least the minimum: a first deploy starts `minimum`), within the limits."""
    return limits.clamp(running if asked is None else asked)


def decide_scale(
    seen: Observation, limits: Limits, recent_desired: list[tuple[float, int]]
) -> ScalingDecision:
    """The replica count for `seen`; `recent_desired`: (at, recommended) of earlier
    decisions, for the scale-in stabilisation window."""
    by_lag = lag_target(seen.total_lag, limits)
    numbers = {
        "total_lag": seen.total_lag,
        "lag_per_replica": limits.lag_per_replica,
        "lag_target": by_lag,
        "cap": limits.cap,
        **({"p99_stable_ms": seen.p99_stable_ms} if seen.p99_stable_ms is not None else {}),
        **({"p99_panic_ms": seen.p99_panic_ms} if seen.p99_panic_ms is not None else {}),
    }
    current, reasons = seen.current, []
    desired = current
    if abs(by_lag - current) > DEAD_BAND * max(current, 1) and by_lag != current:
        desired = by_lag
        reasons.append(
            f"lag {seen.total_lag:,} / {limits.lag_per_replica:,} per replica -> {by_lag} "
            f"(capped at {limits.cap}: max {limits.maximum}, {limits.partitions} partitions)"
        )
    desired = max(desired, _by_latency(seen, limits, current, by_lag, reasons))
    desired = limits.clamp(desired)
    recommended = desired
    if desired < current:
        stabilisation = limits.scale_in_after_seconds
        window = [d for at, d in recent_desired if seen.at - at <= stabilisation]
        held = max(window, default=desired)
        if held > desired:
            reasons.append(
                f"scale-in to {desired} held: a decision of the last {stabilisation:.0f} s "
                f"wanted {held} (stabilisation window)"
            )
            desired = min(held, current)
    if desired == current and not reasons:
        reasons.append(
            f"no change: lag {seen.total_lag:,} wants {by_lag} of {current} replica(s), "
            "within the dead band; latency within target"
        )
    return ScalingDecision(current, desired, reasons, recommended, numbers)


def _by_latency(
    seen: Observation, limits: Limits, current: int, by_lag: int, reasons: list[str]
) -> int:
    target = limits.p99_target_ms
    if seen.p99_panic_ms is not None and seen.p99_panic_ms > 2 * target:
        reasons.append(
            f"panic: p99 {seen.p99_panic_ms:.0f} ms over the last {PANIC_WINDOW_SECONDS:.0f} s "
            f"> 2 x target {target:.0f} ms: scale out now"
        )
        return max(by_lag, current + 1)
    if seen.p99_stable_ms is not None and seen.p99_stable_ms > target:
        reasons.append(
            f"p99 {seen.p99_stable_ms:.0f} ms over the last {STABLE_WINDOW_SECONDS:.0f} s > "
            f"target {target:.0f} ms: one more replica"
        )
        return current + 1
    return 0
