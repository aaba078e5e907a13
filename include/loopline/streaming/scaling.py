"""How many replicas a pipeline should run: one decision, with its numbers and reasons.

Lag: replicas = clamp(ceil(total lag / lag per replica), min, min(max, partitions)), KEDA's
formula, with the cap applied to the *target*, before the dead band: KEDA applies its 10%
tolerance after capping and can stall at partitions - 1 (keda#2908). Here the capped target is
compared with the current count, and a target within the dead band of the current count (and
no other signal) is "no change".

Latency, Knative's two windows: the p99 over a stable window (60 s) above the target scales out
by one; the p99 over a short panic window (6 s) above twice the target scales out at once to
the lag target or one more, whichever is larger. Each window's p99 is the worst of the
replicas' Kafka p99 and, for a pipeline that serves online, the endpoint's p99 (request
arrival to answer). Where only the Kafka p99 is over, the latency rule stops at the partition
count: a replica without a partition does not make a consumer faster.

Concurrency, Knative's KPA, for a pipeline that serves online (`streaming.serve`): the mean
number of requests in flight, summed over the replicas, over the stable window wants
ceil(concurrency / (target_concurrency x 0.7)) replicas (0.7: Knative's default target
utilisation). Panic: when the panic window's concurrency reaches 2 x target x current
replicas, scale out at once to max(ceil(panic concurrency / (target x 0.7)), current + 1),
and no scale-in while in panic (Knative does not scale down in panic). Knative leaves panic
after a calm stable window; here the panic's count joins the stabilisation window below,
which (at its default 300 s) holds it at least that long.

The decision is the largest count of the lag, latency and concurrency rules, within the one
bound (`Limits.clamp`): `minimum` .. `cap`, where the cap is min(max, partitions) for a
Kafka-only pipeline (an extra consumer would sit idle) and `max` for one that serves online
(a replica with no partition still answers requests). The bound wins over panic too: a count
above it (`max` lowered, or `serve` removed) comes back within it.

Direction: scale-out happens at once; scale-in only after every desired count of the
stabilisation window (``streaming.scale_in_after_seconds``, the HPA's 300 s
default) was at or below the new count, so a short lull
does not shed replicas a surge needs again a minute later. Never below `min`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

STABILISATION_SECONDS = 300.0
STABLE_WINDOW_SECONDS = 60.0
PANIC_WINDOW_SECONDS = 6.0
DEAD_BAND = 0.1  # a lag target within 10% of the current count changes nothing
# Knative's `container-concurrency-target-percentage` (70%): replicas are sized for 70% of the
# concurrency target, leaving headroom for a burst while new replicas start.
TARGET_UTILISATION = 0.7
# Knative's `panic-threshold-percentage` (200%): panic when the panic window's concurrency
# reaches twice what the current replicas are meant to carry.
PANIC_THRESHOLD = 2.0


@dataclass(frozen=True)
class Limits:
    minimum: int
    maximum: int
    partitions: int
    lag_per_replica: int  # what one replica is expected to keep up with
    p99_target_ms: float
    scale_in_after_seconds: float = STABILISATION_SECONDS
    # Requests in flight per replica the endpoint aims for (`streaming.serve`'s); None: the
    # pipeline does not serve online (Kafka only).
    target_concurrency: float | None = None

    @property
    def serving(self) -> bool:
        return self.target_concurrency is not None

    @property
    def consumer_cap(self) -> int:
        """The most replicas consuming can use: one per partition, within min and max."""
        return max(min(self.maximum, self.partitions), self.minimum)

    @property
    def cap(self) -> int:
        """The most replicas to run: `maximum` for a pipeline that serves online (replicas
        beyond the partition count answer requests though they hold no partition), else the
        consumer cap (an extra consumer would sit idle)."""
        return max(self.maximum, self.minimum) if self.serving else self.consumer_cap

    def describe_cap(self) -> str:
        """Where the cap comes from, for reasons and steps."""
        if self.serving:
            return (
                f"max {self.maximum}: serving online, replicas beyond the "
                f"{self.partitions} partitions answer requests"
            )
        return f"max {self.maximum}, {self.partitions} partitions"

    def clamp(self, count: int) -> int:
        """`count` within ``minimum..cap``: the one bound on replicas, for what the monitor
        decides and for what a deploy or scale asks (so the monitor never undoes it at once)."""
        return min(max(count, self.minimum), self.cap)


@dataclass(frozen=True)
class Observation:
    """What the monitor saw: total committed lag and the replicas' p99 in each window; for a
    pipeline that serves online, the endpoint's load (None where no replica serves)."""

    at: float  # seconds (monotonic or epoch, as long as one clock is used)
    current: int
    total_lag: int
    p99_stable_ms: float | None = None
    p99_panic_ms: float | None = None
    partitions: int | None = None  # the topic's, as the broker describes it
    # Requests in flight, each replica's mean over the window, summed over the replicas.
    concurrency_stable: float | None = None
    concurrency_panic: float | None = None
    # The endpoint's p99 (request arrival to answer) in each window, the worst replica's.
    endpoint_p99_stable_ms: float | None = None
    endpoint_p99_panic_ms: float | None = None


@dataclass(frozen=True)
class ScalingDecision:
    current: int
    desired: int
    reasons: list[str]
    # What lag, latency and concurrency asked for before the stabilisation window held a
    # scale-in: what the window keeps (keeping `desired` instead would let a held count hold
    # itself forever).
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
    """KEDA's replica count for a lag, capped by max and by the partition count (also for a
    pipeline that serves online: a replica beyond the partitions consumes nothing)."""
    wanted = math.ceil(total_lag / limits.lag_per_replica) if total_lag > 0 else limits.minimum
    return min(limits.clamp(wanted), limits.consumer_cap)


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
        **_present(
            p99_stable_ms=seen.p99_stable_ms,
            p99_panic_ms=seen.p99_panic_ms,
            endpoint_p99_stable_ms=seen.endpoint_p99_stable_ms,
            endpoint_p99_panic_ms=seen.endpoint_p99_panic_ms,
        ),
    }
    current, reasons = seen.current, []
    desired = current
    if abs(by_lag - current) > DEAD_BAND * max(current, 1) and by_lag != current:
        desired = by_lag
        reasons.append(
            f"lag {seen.total_lag:,} / {limits.lag_per_replica:,} per replica -> {by_lag} "
            f"(capped at {limits.consumer_cap}: max {limits.maximum}, "
            f"{limits.partitions} partitions)"
        )
    desired = max(desired, _by_latency(seen, limits, current, by_lag, reasons))
    load = _by_concurrency(seen, limits, current, desired, reasons)
    if load is not None:
        numbers.update(load.numbers)
        desired = max(desired, load.desired)
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
        said = f"; {load.said}" if load is not None else ""
        reasons.append(
            f"no change: lag {seen.total_lag:,} wants {by_lag} of {current} replica(s), "
            f"within the dead band; latency within target{said}"
        )
    return ScalingDecision(current, desired, reasons, recommended, numbers)


def _by_latency(
    seen: Observation, limits: Limits, current: int, by_lag: int, reasons: list[str]
) -> int:
    """Knative's two windows on the worst p99, the Kafka one or the endpoint's. Where only
    the Kafka p99 is over, at most the consumer cap (a replica without a partition does not
    make consuming faster)."""
    target = limits.p99_target_ms
    panic = _worst_p99(seen.p99_panic_ms, seen.endpoint_p99_panic_ms, 2 * target)
    if panic is not None:
        p99, label, bound = panic.p99, panic.label, panic.bound(limits)
        reasons.append(
            f"panic: {label} {p99:.0f} ms over the last {PANIC_WINDOW_SECONDS:.0f} s "
            f"> 2 x target {target:.0f} ms: scale out now{panic.bounded(limits)}"
        )
        return min(max(by_lag, current + 1), bound)
    stable = _worst_p99(seen.p99_stable_ms, seen.endpoint_p99_stable_ms, target)
    if stable is not None:
        reasons.append(
            f"{stable.label} {stable.p99:.0f} ms over the last {STABLE_WINDOW_SECONDS:.0f} s "
            f"> target {target:.0f} ms: one more replica{stable.bounded(limits)}"
        )
        return min(current + 1, stable.bound(limits))
    return 0


@dataclass(frozen=True)
class _Slow:
    p99: float  # the worst p99 over its threshold
    label: str  # "p99" (the Kafka one) or "endpoint p99"
    endpoint: bool  # the endpoint's p99 is over: replicas beyond the partitions help

    def bound(self, limits: Limits) -> int:
        return limits.cap if self.endpoint else limits.consumer_cap

    def bounded(self, limits: Limits) -> str:
        if not self.endpoint and limits.consumer_cap < limits.cap:
            return f" (Kafka only: at most {limits.consumer_cap}, the partitions)"
        return ""


def _worst_p99(kafka: float | None, endpoint: float | None, over: float) -> _Slow | None:
    """The worst of the Kafka and the endpoint p99 where it is above `over`, else None."""
    worst = max((p for p in (kafka, endpoint) if p is not None), default=None)
    if worst is None or worst <= over:
        return None
    endpoint_over = endpoint is not None and endpoint > over
    label = "endpoint p99" if worst == endpoint and worst != kafka else "p99"
    return _Slow(worst, label, endpoint_over)


@dataclass(frozen=True)
class _Load:
    desired: int  # 0: concurrency asks nothing (no requests)
    said: str  # the stable window's numbers in a few words, for "no change"
    numbers: dict[str, float]


def _by_concurrency(
    seen: Observation, limits: Limits, current: int, before: int, reasons: list[str]
) -> _Load | None:
    """Knative's KPA on the endpoint's concurrency; None for a pipeline that does not serve
    online or where no replica reported its endpoint. `before`: what lag and latency want,
    so that a reason is given where concurrency raises or holds the count."""
    target = limits.target_concurrency
    stable, panic_seen = seen.concurrency_stable, seen.concurrency_panic
    if target is None or (stable is None and panic_seen is None):
        return None
    per_replica = target * TARGET_UTILISATION
    numbers: dict[str, float] = {
        "concurrency_target": target,
        "concurrency_per_replica": round(per_replica, 3),
        **_present(concurrency_stable=stable, concurrency_panic=panic_seen),
    }
    wanted = _replicas_for(stable, per_replica) if stable else 0
    numbers["concurrency_desired"] = wanted
    said = (
        f"concurrency {stable or 0.0:.1f} over the last {STABLE_WINDOW_SECONDS:.0f} s / "
        f"({target:g} x {TARGET_UTILISATION:g}) -> {max(wanted, limits.minimum)}"
    )
    threshold = PANIC_THRESHOLD * target * max(current, 1)
    if panic_seen is not None and panic_seen > 0 and panic_seen >= threshold:
        surge = _replicas_for(panic_seen, per_replica)
        jump = max(surge, current + 1)
        numbers.update(panic=1, concurrency_panic_desired=surge)
        reasons.append(
            f"panic: concurrency {panic_seen:.1f} over the last {PANIC_WINDOW_SECONDS:.0f} s "
            f">= {PANIC_THRESHOLD:g} x target {target:g} x {max(current, 1)} replica(s) = "
            f"{threshold:g}: scale out now to max(ceil({panic_seen:.1f} / ({target:g} x "
            f"{TARGET_UTILISATION:g})) = {surge}, {current} + 1) = {jump}"
            f"{_capped(jump, limits)}; no scale-in while in panic"
        )
        if wanted > jump:  # the stable window asks more still
            reasons.append(f"{said} replica(s){_capped(wanted, limits)}")
        return _Load(max(jump, wanted), said, numbers)
    numbers["panic"] = 0
    if wanted > before or wanted == before != current:
        reasons.append(f"{said} replica(s){_capped(wanted, limits)}")
    return _Load(wanted, said, numbers)


def _replicas_for(concurrency: float, per_replica: float) -> int:
    """ceil(concurrency / per replica), the quotient rounded first: 4.2 / (3 x 0.7) is 2, not
    the 3 that floating point (2.0000000000000004) would make it."""
    return math.ceil(round(concurrency / per_replica, 9))


def _capped(count: int, limits: Limits) -> str:
    if count > limits.cap:
        return f" (capped at {limits.cap}: {limits.describe_cap()})"
    return ""


def _present(**values: float | None) -> dict[str, float]:
    return {name: value for name, value in values.items() if value is not None}
