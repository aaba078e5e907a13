"""The promotion decision: does a candidate beat the champion, within every budget?

Pure functions over numbers measured on the *same* holdout. The rules, in order:

- absolute thresholds (``promotion.absolute_thresholds``): always; the only quality bar for
  the first model;
- the primary metric (``promotion.metric``) must improve on the champion by at least
  ``promotion.min_improvement``. A tie never promotes: with a margin of 0 the candidate must
  be strictly better, so two equal models leave the champion in place;
- guard metrics (``promotion.guard_tolerances``) may be worse than the champion's by at most
  their tolerance;
- p99 single-row CPU latency and model size within ``max_p99_latency_ms`` and
  ``max_model_size_mb``;
- the candidate's inputs must be ones the champion's callers already send: same names, same
  types (a new required input would break serving).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from loopline.spec.sections import LOWER_IS_BETTER, PromotionSpec


@dataclass(frozen=True)
class Measurement:
    """A model measured on the holdout: the candidate's, or the champion's to beat."""

    metrics: dict[str, float]
    p99_latency_ms: float
    size_mb: float
    input_schema: list[dict[str, str]]


class Check(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    passed: bool
    detail: str


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    promote: bool
    checks: list[Check] = []

    @property
    def reasons(self) -> list[str]:
        """Why it was refused (empty when promoted)."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def summary(self) -> str:
        verdict = "PROMOTE" if self.promote else "KEEP CHAMPION"
        lines = [f"{'ok ' if c.passed else 'NO '} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join([verdict, *lines])


def gain(metric: str, candidate: float, champion: float) -> float:
    """How much better the candidate is (positive) on `metric`, whatever its direction."""
    return champion - candidate if metric in LOWER_IS_BETTER else candidate - champion


def decide(candidate: Measurement, champion: Measurement | None, rules: PromotionSpec) -> Decision:
    checks = [*_absolute(candidate, rules), *_budgets(candidate, rules)]
    if champion is not None:
        checks += [
            _primary(candidate, champion, rules),
            *_guards(candidate, champion, rules),
            _schema(candidate, champion),
        ]
    return Decision(promote=all(check.passed for check in checks), checks=checks)


def _absolute(candidate: Measurement, rules: PromotionSpec) -> list[Check]:
    checks = []
    for metric, threshold in rules.absolute_thresholds.items():
        value = candidate.metrics[metric.value]
        ok = gain(metric.value, value, threshold) >= 0
        relation = "<=" if metric.value in LOWER_IS_BETTER else ">="
        checks.append(
            _check(f"{metric.value} threshold", ok, f"{value:.4f} (needs {relation} {threshold})")
        )
    return checks


def _budgets(candidate: Measurement, rules: PromotionSpec) -> list[Check]:
    return [
        _check(
            "p99 latency",
            candidate.p99_latency_ms <= rules.max_p99_latency_ms,
            f"{candidate.p99_latency_ms:.2f} ms (budget {rules.max_p99_latency_ms} ms)",
        ),
        _check(
            "model size",
            candidate.size_mb <= rules.max_model_size_mb,
            f"{candidate.size_mb:.2f} MB (budget {rules.max_model_size_mb} MB)",
        ),
    ]


def _primary(candidate: Measurement, champion: Measurement, rules: PromotionSpec) -> Check:
    metric = rules.metric.value
    improvement = gain(metric, candidate.metrics[metric], champion.metrics[metric])
    margin = rules.min_improvement
    ok = improvement > 0 and improvement >= margin
    needs = f"must improve by at least {margin}" if margin else "a tie keeps the champion"
    return _check(
        f"{metric} improvement",
        ok,
        _comparison(metric, candidate.metrics[metric], champion.metrics[metric], needs),
    )


def _guards(candidate: Measurement, champion: Measurement, rules: PromotionSpec) -> list[Check]:
    checks = []
    for metric, tolerance in rules.guard_tolerances.items():
        name = metric.value
        ours, theirs = candidate.metrics[name], champion.metrics[name]
        limit = f"may regress by at most {tolerance}"
        checks.append(
            _check(
                f"{name} guard",
                gain(name, ours, theirs) >= -tolerance,
                _comparison(name, ours, theirs, limit),
            )
        )
    return checks


def _comparison(metric: str, candidate: float, champion: float, rule: str) -> str:
    """The candidate against the champion in words, e.g. "0.2312 vs champion 0.2568: improved
    by 0.0256 (lower is better; may regress by at most 0.02)": a signed difference alone
    reads backwards for a metric where lower is better."""
    change = gain(metric, candidate, champion)
    moved = f"improved by {change:.4f}" if change > 0 else f"regressed by {-change:.4f}"
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    return (
        f"{candidate:.4f} vs champion {champion:.4f}: {moved if change else 'unchanged'} "
        f"({direction} is better; {rule})"
    )


def _schema(candidate: Measurement, champion: Measurement) -> Check:
    served = {column["name"]: column["type"] for column in champion.input_schema}
    problems = []
    for column in candidate.input_schema:
        if column["name"] not in served:
            problems.append(f"new input {column['name']}")
        elif served[column["name"]] != column["type"]:
            problems.append(
                f"{column['name']} is {column['type']}, champion takes {served[column['name']]}"
            )
    detail = "; ".join(problems) if problems else "takes the champion's inputs"
    return _check("input schema", not problems, detail)


def _check(name: str, passed: bool, detail: str) -> Check:
    return Check(name=name, passed=passed, detail=detail)
