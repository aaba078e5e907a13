"""The retrain decision: limits crossed, then cooldown and hysteresis, always with reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopline.drift.decision import PastAudit, decide
from loopline.spec.sections import DriftSpec

LIMITS = DriftSpec(cooldown_hours=6, drifted_share_to_retrain=0.3, rearm_share=0.1)
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
CROSSED = ["12 of 32 features drifted (share 0.38 >= ...)"]


def audit(hours_ago: float, share: float, retrained: bool, champion: int = 1) -> PastAudit:
    return PastAudit(f"a-{hours_ago}", NOW - timedelta(hours=hours_ago), share, retrained, champion)


def test_within_limits_never_retrains() -> None:
    decision = decide([], LIMITS, [], champion=1, now=NOW)
    assert not decision.retrain and decision.verdict == "within_limits"
    assert decision.reasons == ["within every drift limit: nothing to retrain for"]


def test_a_first_crossing_retrains_with_the_limits_as_reasons() -> None:
    decision = decide(CROSSED, LIMITS, [audit(48, 0.0, False)], champion=1, now=NOW)
    assert decision.retrain and decision.verdict == "retrain" and decision.reasons == CROSSED


def test_the_cooldown_holds_and_says_until_when() -> None:
    decision = decide(CROSSED, LIMITS, [audit(2, 0.4, True)], champion=1, now=NOW)
    assert not decision.retrain and decision.verdict == "held"
    assert "next retrain can start after 2026-11-30 16:00 UTC" in decision.reasons[0]
    assert decision.crossed == CROSSED


def test_after_the_cooldown_the_same_drift_does_not_retrain_again_until_it_clears() -> None:
    history = [audit(30, 0.4, True), audit(20, 0.35, False)]
    held = decide(CROSSED, LIMITS, history, champion=1, now=NOW)
    assert not held.retrain and held.reasons[0].startswith("hysteresis: audit a-30 ")

    cleared = [*history, audit(10, 0.05, False)]  # an audit saw the drift clear: re-armed
    assert decide(CROSSED, LIMITS, cleared, champion=1, now=NOW).retrain


def test_a_new_champion_rearms_after_the_cooldown() -> None:
    history = [audit(30, 0.4, True, champion=1)]
    assert decide(CROSSED, LIMITS, history, champion=2, now=NOW).retrain
