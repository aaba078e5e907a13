"""The promotion rules, as a table: each case changes one number from a passing candidate."""

from __future__ import annotations

import pytest
from loopline.promotion.gates import Measurement, decide
from loopline.spec.sections import PromotionSpec

RULES = PromotionSpec(
    metric="auc",
    min_improvement=0.002,
    guard_tolerances={"logloss": 0.01},
    absolute_thresholds={"auc": 0.75},
    max_p99_latency_ms=20,
    max_model_size_mb=50,
)
SCHEMA = [{"name": "amount", "type": "float32"}, {"name": "channel", "type": "string"}]
CHAMPION = Measurement({"auc": 0.90, "logloss": 0.20}, 5.0, 1.0, SCHEMA)


def candidate(**changes) -> Measurement:
    values = {
        "metrics": {"auc": 0.91, "logloss": 0.19},
        "p99_latency_ms": 5.0,
        "size_mb": 1.0,
        "input_schema": SCHEMA,
    }
    values.update(changes)
    return Measurement(**values)


def test_a_better_candidate_is_promoted() -> None:
    decision = decide(candidate(), CHAMPION, RULES)
    assert decision.promote and decision.reasons == []


@pytest.mark.parametrize(
    ("changes", "refused_by"),
    [
        ({"metrics": {"auc": 0.88, "logloss": 0.19}}, "auc improvement"),
        ({"metrics": {"auc": 0.901, "logloss": 0.19}}, "auc improvement"),  # below the margin
        ({"metrics": {"auc": 0.91, "logloss": 0.215}}, "logloss guard"),
        ({"p99_latency_ms": 25.0}, "p99 latency"),
        ({"size_mb": 60.0}, "model size"),
        ({"input_schema": [*SCHEMA, {"name": "new", "type": "float32"}]}, "input schema"),
        ({"input_schema": [{"name": "amount", "type": "string"}]}, "input schema"),
    ],
)
def test_a_candidate_failing_one_gate_is_kept_as_challenger(changes, refused_by) -> None:
    decision = decide(candidate(**changes), CHAMPION, RULES)
    assert not decision.promote
    assert [reason.split(":")[0] for reason in decision.reasons] == [refused_by]


def test_a_tie_keeps_the_champion_even_with_no_margin() -> None:
    rules = RULES.model_copy(update={"min_improvement": 0.0})
    tie = candidate(metrics=dict(CHAMPION.metrics))
    assert not decide(tie, CHAMPION, rules).promote


def test_the_first_model_needs_only_the_absolute_thresholds_and_budgets() -> None:
    assert decide(candidate(metrics={"auc": 0.76, "logloss": 0.5}), None, RULES).promote
    first = decide(candidate(metrics={"auc": 0.70, "logloss": 0.5}), None, RULES)
    assert not first.promote and first.reasons == ["auc threshold: 0.7000 (needs >= 0.75)"]
