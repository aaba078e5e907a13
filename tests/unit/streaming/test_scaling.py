"""Auto-scaling decisions: KEDA's lag formula capped before the dead band, Knative's latency
windows, immediate scale-out, stabilised scale-in, and "no change" said with its numbers; for
a pipeline that serves online, Knative's KPA on the endpoint's concurrency (with its panic
mode), up to `replicas.max` rather than the partition count. And what the monitor makes of
the replicas' heartbeats and of the spec."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest
from loopline.spec.sections import Replicas, ServeSpec, StreamingSpec
from loopline.streaming import monitor
from loopline.streaming.deployment import Deployment
from loopline.streaming.lag import GroupLag, PartitionLag
from loopline.streaming.scaling import (
    Limits,
    Observation,
    decide_scale,
    lag_target,
    replicas_to_run,
)

LIMITS = Limits(minimum=1, maximum=8, partitions=4, lag_per_replica=1000, p99_target_ms=250)
# The same pipeline serving online: 10 requests in flight per replica aimed at, so each
# replica is sized for 10 x 0.7 = 7 (Knative's target utilisation).
SERVING = Limits(1, 8, 4, 1000, 250, target_concurrency=10)


def test_lag_target_is_kedas_formula_capped_by_partitions_and_max() -> None:
    assert lag_target(0, LIMITS) == 1
    assert lag_target(2500, LIMITS) == 3
    assert lag_target(1_000_000, LIMITS) == 4  # not 8: a fifth replica would sit idle
    assert lag_target(5000, Limits(1, 2, 4, 1000, 250)) == 2


def test_scale_out_is_immediate_and_reaches_the_cap_not_cap_minus_one() -> None:
    decision = decide_scale(Observation(0, 3, 3_900), LIMITS, [])
    # ceil(3.9) = 4 = the cap; KEDA's tolerance after capping would stall at 3 (keda#2908).
    assert (decision.action, decision.desired) == ("scale_out", 4)
    assert decision.numbers["cap"] == 4 and "4 partitions" in decision.reasons[0]


def test_a_target_within_the_dead_band_changes_nothing_and_says_why() -> None:
    decision = decide_scale(Observation(0, 10, 10_500), Limits(1, 20, 20, 1000, 250), [])
    assert decision.action == "no_change" and decision.desired == 10
    assert decision.reasons[0].startswith("no change: lag 10,500 wants 11 of 10 replica(s)")


def test_scale_in_waits_out_the_stabilisation_window() -> None:
    recent = [(100.0, 4), (200.0, 3)]
    held = decide_scale(Observation(250.0, 4, 0), LIMITS, recent)
    assert held.desired == 4 and "stabilisation window" in held.reasons[-1]
    later = decide_scale(Observation(700.0, 4, 0), LIMITS, recent)
    assert (later.action, later.desired) == ("scale_in", 1)


def test_latency_scales_out_by_one_and_panic_jumps() -> None:
    slow = decide_scale(Observation(0, 2, 0, p99_stable_ms=400), LIMITS, [])
    assert slow.desired == 3 and "one more replica" in slow.reasons[-1]
    panic = decide_scale(Observation(0, 1, 2_500, p99_stable_ms=300, p99_panic_ms=900), LIMITS, [])
    assert panic.desired == 3 and panic.reasons[-1].startswith("panic: p99 900 ms")
    capped = decide_scale(Observation(0, 4, 0, p99_panic_ms=900), LIMITS, [])
    assert capped.desired == 4  # never beyond the partitions


def test_a_held_scale_in_does_not_hold_itself_for_ever() -> None:
    """The window keeps what lag and latency recommended, not the held count: the monitor's
    own held decisions, every minute, must not keep the replicas out."""
    held = decide_scale(Observation(60.0, 4, 0), LIMITS, [(0.0, 4)])
    assert (held.desired, held.recommended) == (4, 1)
    window = [(0.0, 4), (60.0, held.recommended)]
    later = decide_scale(Observation(320.0, 4, 0), LIMITS, window)
    assert (later.action, later.desired) == ("scale_in", 1)


def test_concurrency_scales_out_to_knatives_kpa_count() -> None:
    decision = decide_scale(
        Observation(0, 2, 0, concurrency_stable=30, concurrency_panic=30), SERVING, []
    )
    # ceil(30 / (10 x 0.7)) = 5; 30 < 2 x 10 x 2 = 40: no panic
    assert (decision.action, decision.desired) == ("scale_out", 5)
    assert (
        decision.reasons[-1] == "concurrency 30.0 over the last 60 s / (10 x 0.7) -> 5 replica(s)"
    )
    assert (
        decision.numbers.items()
        >= {
            "concurrency_stable": 30,
            "concurrency_panic": 30,
            "concurrency_target": 10,
            "concurrency_per_replica": 7,
            "concurrency_desired": 5,
            "panic": 0,
        }.items()
    )


def test_panic_scales_out_at_once_and_never_in() -> None:
    surge = decide_scale(
        Observation(0, 2, 0, concurrency_stable=10, concurrency_panic=40), SERVING, []
    )
    # 40 >= 2 x 10 x 2: panic, to max(ceil(40 / 7), 2 + 1) = 6, though the stable window wants 2
    assert (surge.action, surge.desired, surge.recommended) == ("scale_out", 6, 6)
    assert surge.reasons[-1].startswith("panic: concurrency 40.0 over the last 6 s >= 2 x target")
    assert "= 6; no scale-in while in panic" in surge.reasons[-1]
    assert (surge.numbers["panic"], surge.numbers["concurrency_panic_desired"]) == (1, 6)
    # in panic, a stable window busier still (the panic window caught a lull) asks more
    busier = decide_scale(
        Observation(0, 2, 0, concurrency_stable=100, concurrency_panic=40), SERVING, []
    )
    assert busier.desired == 8 and busier.reasons[-1].startswith("concurrency 100.0")

    # At the cap, with no lag and a calm stable window, and no stabilisation window to hold
    # anything: outside panic that is a scale-in to 1; in panic, nothing goes.
    no_window = Limits(1, 8, 4, 1000, 250, scale_in_after_seconds=0, target_concurrency=10)
    calm = Observation(0, 8, 0, concurrency_stable=5, concurrency_panic=5)
    assert decide_scale(calm, no_window, []).desired == 1
    panic = Observation(0, 8, 0, concurrency_stable=5, concurrency_panic=160)
    held = decide_scale(panic, no_window, [])
    assert (held.action, held.desired, held.recommended) == ("no_change", 8, 8)
    assert "capped at 8" in held.reasons[-1] and "no scale-in while in panic" in held.reasons[-1]


def test_after_a_panic_the_stabilisation_window_holds_the_count() -> None:
    """Knative leaves panic after a calm stable window: the panic's count, recommended, is in
    the scale-in stabilisation window (300 s), so a calm minute later nothing is shed yet."""
    panic = decide_scale(
        Observation(0, 2, 0, concurrency_stable=10, concurrency_panic=40), SERVING, []
    )
    window = [(0.0, panic.recommended)]
    calm = Observation(60.0, 6, 0, concurrency_stable=10, concurrency_panic=8)
    held = decide_scale(calm, SERVING, window)
    assert (held.desired, held.recommended) == (6, 2)
    assert "stabilisation window" in held.reasons[-1]
    later = decide_scale(Observation(400.0, 6, 0, concurrency_stable=10), SERVING, window)
    assert (later.action, later.desired) == ("scale_in", 2)


def test_a_serving_pipeline_may_run_more_replicas_than_partitions_never_more_than_max() -> None:
    assert (SERVING.cap, LIMITS.cap) == (8, 4)
    assert replicas_to_run(6, 2, SERVING) == 6 and replicas_to_run(6, 2, LIMITS) == 4
    assert replicas_to_run(20, 2, SERVING) == 8

    busy = decide_scale(Observation(0, 3, 0, concurrency_stable=42), SERVING, [])
    assert busy.desired == 6 and busy.numbers["cap"] == 8  # ceil(42 / 7), beyond 4 partitions
    flooded = decide_scale(Observation(0, 3, 0, concurrency_stable=1000), SERVING, [])
    assert flooded.desired == 8  # ceil(1000 / 7) = 143, capped at max
    assert (
        "(capped at 8: max 8: serving online, replicas beyond the 4 partitions"
        in (flooded.reasons[-1])
    )
    panic = decide_scale(Observation(0, 6, 0, concurrency_panic=10_000), SERVING, [])
    assert panic.desired == 8

    # Lag alone never goes beyond the partitions: a replica without one consumes nothing.
    assert lag_target(1_000_000, SERVING) == 4
    lagging = decide_scale(Observation(0, 2, 1_000_000, concurrency_stable=0), SERVING, [])
    assert lagging.desired == 4 and "capped at 4: max 8, 4 partitions" in lagging.reasons[0]


def test_a_kafka_only_pipeline_decides_as_before() -> None:
    """No serve section: concurrency the replicas might still report changes nothing, and the
    decision carries no concurrency numbers."""
    for seen in [
        Observation(0, 3, 3_900),
        Observation(0, 2, 0, p99_stable_ms=400),
        Observation(250.0, 4, 0),
        Observation(0, 10, 10_500),
    ]:
        plain = decide_scale(seen, LIMITS, [(100.0, 4)])
        loaded = replace(seen, concurrency_stable=500, concurrency_panic=900)
        assert decide_scale(loaded, LIMITS, [(100.0, 4)]) == plain
        assert not [name for name in plain.numbers if "concurrency" in name]
    # a serving pipeline whose replicas have not reported their endpoint yet: lag as before
    assert decide_scale(Observation(0, 3, 3_900), SERVING, []).desired == 4
    assert "concurrency_target" not in decide_scale(Observation(0, 3, 3_900), SERVING, []).numbers


def test_a_count_exactly_at_the_target_is_not_rounded_up() -> None:
    # 3 x 0.7 is 2.0999999999999996 in floating point: 4.2 in flight is 2 replicas' worth
    limits = Limits(1, 8, 4, 1000, 250, target_concurrency=3)
    assert decide_scale(Observation(0, 1, 0, concurrency_stable=4.2), limits, []).desired == 2


def test_the_endpoint_p99_joins_the_latency_rule() -> None:
    slow = decide_scale(Observation(0, 2, 0, endpoint_p99_stable_ms=400), SERVING, [])
    assert slow.desired == 3
    assert slow.reasons[-1].startswith("endpoint p99 400 ms over the last 60 s > target 250 ms")
    assert slow.numbers["endpoint_p99_stable_ms"] == 400

    # the worst of the two per window: here the Kafka p99
    worst = decide_scale(
        Observation(0, 2, 0, p99_stable_ms=300, endpoint_p99_stable_ms=280), SERVING, []
    )
    assert worst.desired == 3 and worst.reasons[-1].startswith("p99 300 ms over the last 60 s")

    panic = decide_scale(
        Observation(0, 1, 2_500, p99_panic_ms=300, endpoint_p99_panic_ms=900), SERVING, []
    )
    assert panic.desired == 3 and panic.reasons[-1].startswith("panic: endpoint p99 900 ms")

    # At the partition count, a slow endpoint adds a replica; a slow consumer alone does not.
    at_partitions = decide_scale(Observation(0, 4, 0, endpoint_p99_stable_ms=400), SERVING, [])
    assert at_partitions.desired == 5
    consuming = decide_scale(Observation(0, 4, 0, p99_stable_ms=400), SERVING, [])
    assert consuming.desired == 4 and "Kafka only: at most 4" in consuming.reasons[-1]


def test_concurrency_holds_against_scale_in_and_says_so() -> None:
    busy = decide_scale(Observation(0, 4, 0, concurrency_stable=25), SERVING, [])
    # the lag wants 1; ceil(25 / 7) = 4 keeps the four
    assert busy.action == "no_change"
    assert busy.reasons[0].startswith("lag 0 / 1,000 per replica -> 1")
    assert busy.reasons[1] == "concurrency 25.0 over the last 60 s / (10 x 0.7) -> 4 replica(s)"

    quiet = decide_scale(Observation(0, 1, 0, concurrency_stable=3), SERVING, [])
    assert quiet.reasons == [
        "no change: lag 0 wants 1 of 1 replica(s), within the dead band; latency within "
        "target; concurrency 3.0 over the last 60 s / (10 x 0.7) -> 1"
    ]

    fewer = decide_scale(Observation(500.0, 5, 0, concurrency_stable=10), SERVING, [(300.0, 5)])
    assert (fewer.action, fewer.desired) == ("no_change", 5)  # held by the window
    gone = decide_scale(Observation(700.0, 5, 0, concurrency_stable=10), SERVING, [(300.0, 5)])
    assert (gone.action, gone.desired) == ("scale_in", 2)


# ---------------------------------------------------------------- the monitor's side


STREAMING = StreamingSpec(
    input_topic="t.in",
    output_topic="t.out",
    consumer_group="g",
    partitions=4,
    replicas=Replicas(min=1, max=8),
)
SERVING_STREAMING = STREAMING.model_copy(update={"serve": ServeSpec(target_concurrency=5)})


class Beating:
    """A deployment that only reports heartbeats (what `observe` reads)."""

    def __init__(self, beats: list[dict[str, Any]]) -> None:
        self.beats = beats

    def heartbeats(self) -> list[dict[str, Any]]:
        return self.beats

    def replica_count(self) -> int:
        return len(self.beats)


def beating(beats: list[dict[str, Any]]) -> Deployment:
    return cast(Deployment, Beating(beats))


def endpoint(stable: float, panic: float, p99_60s: float | None, p99_6s: float | None) -> dict:
    return {
        "requests": 100,
        "in_flight": 2,
        "latency_ms": {"p50": 5.0, "p99": 50.0, "p99_60s": p99_60s, "p99_6s": p99_6s},
        "concurrency_60s": stable,
        "concurrency_6s": panic,
        "failed": 0,
        "refused": 0,
    }


@pytest.fixture
def no_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    lag = GroupLag("t.in", "g", [PartitionLag(p, 10, 10, 0) for p in range(4)])
    monkeypatch.setattr(monitor, "group_lag", lambda *args: lag)


def test_the_monitor_sums_concurrency_and_takes_the_worst_endpoint_p99(no_lag) -> None:
    beats = [
        {"latency_ms": {"p99_60s": 30.0, "p99_6s": 35.0},
         "endpoint": endpoint(12.5, 20.0, 40.0, 90.0)},
        {"latency_ms": {"p99_60s": 80.0, "p99_6s": None},
         "endpoint": endpoint(10.0, 4.5, 120.0, None)},
        {"latency_ms": {"p99_60s": 20.0}},  # not serving (yet): counts for nothing online
    ]  # fmt: skip
    seen = monitor.observe("broker:9092", STREAMING, beating(beats), now=5.0)
    assert (seen.current, seen.partitions, seen.total_lag) == (3, 4, 0)
    assert (seen.p99_stable_ms, seen.p99_panic_ms) == (80.0, 35.0)
    assert (seen.concurrency_stable, seen.concurrency_panic) == (22.5, 24.5)
    assert (seen.endpoint_p99_stable_ms, seen.endpoint_p99_panic_ms) == (120.0, 90.0)
    limits = monitor.scaling_limits(SERVING_STREAMING, seen.partitions)
    decision = monitor.decide_scale(seen, limits, [])
    assert decision.desired == 7  # ceil(22.5 / (5 x 0.7)): beyond the 4 partitions

    kafka_only = monitor.observe("broker:9092", STREAMING, beating(beats[2:]), now=5.0)
    assert kafka_only.concurrency_stable is None and kafka_only.endpoint_p99_stable_ms is None


def test_the_limits_serve_up_to_max_where_the_spec_serves_online() -> None:
    kafka_only = monitor.scaling_limits(STREAMING, partitions=4)
    assert (kafka_only.target_concurrency, kafka_only.cap) == (None, 4)
    limits = monitor.scaling_limits(SERVING_STREAMING, partitions=4)
    assert (limits.target_concurrency, limits.cap, limits.consumer_cap) == (5, 8, 4)
    default = STREAMING.model_copy(update={"serve": ServeSpec()})
    assert monitor.scaling_limits(default).target_concurrency == 8.0
