"""Whether an audit retrains: the limits it crossed, then a cooldown and hysteresis.

Retraining storms are what a naive "drifted, so retrain" loop produces: every audit of a
drifted window starts another training run until a new champion lands (and forever if the
candidates keep losing). Two guards, both from the spec:
- cooldown: no retrain within `drift.cooldown_hours` of the last one an audit started;
- hysteresis: after an audit retrained, later audits retrain only once the drift cleared (an
  audit saw the drifted share below `drift.rearm_share`) or a new champion was promoted.
The decision, retrain or not, is always recorded with its reasons.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from loopline.spec.sections import DriftSpec


@dataclass(frozen=True)
class PastAudit:
    """What the decision needs of an earlier audit (from its record)."""

    run_id: str
    ended_at: datetime
    drifted_share: float
    retrained: bool
    champion: int | None


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: list[str]  # why, either way
    crossed: list[str]  # the limits crossed (may be non-empty when held back)

    @property
    def verdict(self) -> str:
        if self.retrain:
            return "retrain"
        return "held" if self.crossed else "within_limits"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def decide(
    crossed: list[str],
    limits: DriftSpec,
    history: list[PastAudit],
    champion: int | None,
    now: datetime,
) -> Decision:
    """`crossed`: the limits this audit crossed; `history`: earlier audits, oldest first."""
    if not crossed:
        return Decision(False, ["within every drift limit: nothing to retrain for"], [])
    retrains = [audit for audit in history if audit.retrained]
    if not retrains:
        return Decision(True, crossed, crossed)
    last = retrains[-1]
    cooldown_end = last.ended_at + timedelta(hours=limits.cooldown_hours)
    if now < cooldown_end:
        return Decision(
            False,
            [
                f"cooldown: audit {last.run_id} retrained at {last.ended_at:%Y-%m-%d %H:%M} "
                f"UTC; the next retrain can start after {cooldown_end:%Y-%m-%d %H:%M} UTC "
                f"(drift.cooldown_hours {limits.cooldown_hours:g})"
            ],
            crossed,
        )
    since = [audit for audit in history if audit.ended_at > last.ended_at]
    cleared = any(audit.drifted_share < limits.rearm_share for audit in since)
    if champion == last.champion and not cleared:
        return Decision(
            False,
            [
                f"hysteresis: audit {last.run_id} already retrained for this drift and it has "
                f"not cleared since (no audit with a drifted share below drift.rearm_share "
                f"{limits.rearm_share}), nor has a new champion been promoted "
                f"(still v{champion})"
            ],
            crossed,
        )
    return Decision(True, crossed, crossed)
