"""Auto-scaling decisions: KEDA's lag formula capped before the dead band, Knative's latency
windows, immediate scale-out, stabilised scale-in, and "no change" said with its numbers."""

from __future__ import annotations

from loopline.streaming.scaling import Limits, Observation, decide_scale, lag_target

LIMITS = Limits(minimum=1, maximum=8, partitions=4, lag_per_replica=1000, p99_target_ms=250)


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
