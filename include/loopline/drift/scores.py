"""Per-column drift scores from profiles, with the test Evidently would choose.

Evidently 0.7's default test depends on the reference's size and the column (its stattest
registry, ``_get_default_stattest``). Above 1,000 reference rows, which is every audit here:
a number with more than 5 distinct values gets the Wasserstein distance normed by the
reference's standard deviation; fewer values, or a category, the Jensen-Shannon distance
between value frequencies; both are distances (drift when >= 0.1 by default). At 1,000 rows or
fewer Evidently switches to p-value tests on the rows themselves (K-S, chi-square, Z), which a
profile cannot reproduce: ``SmallReference`` says so, and the audit runs Evidently on the rows.

From profiles the Jensen-Shannon distance is exact (value counts add up exactly) and the
Wasserstein distance is computed on bucket representatives, each within 0.5% (relative) of
its values: the normed distance is off by at most ~1% of the mean absolute value over the
standard deviation, and in practice far less (both sides share the buckets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.spatial import distance
from scipy.stats import wasserstein_distance

from loopline.data.profiles import CategoryProfile, ColumnProfile, NumericProfile

SMALL_REFERENCE = 1000  # Evidently's switch from p-value tests to distances
WASSERSTEIN = "Wasserstein distance (normed)"  # Evidently's method names, as its reports say
JENSEN_SHANNON = "Jensen-Shannon distance"
DEFAULT_THRESHOLDS = {WASSERSTEIN: 0.1, JENSEN_SHANNON: 0.1}


class SmallReference(ValueError):
    """The reference has too few rows for a distance test: Evidently would use a p-value."""


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    score_kind: Literal["distance", "p_value"]  # distance: higher is more drift
    threshold: float
    drifted: bool

    def describe(self) -> str:
        """E.g. "v3: K-S p_value 0.0000 <= 0.05: drifted". The comparison runs opposite ways:
        a distance drifts at or above its threshold, a p-value at or below it (the audit's
        rule, as Evidently's K-S test decides)."""
        if self.score_kind == "p_value":
            sign = "<=" if self.drifted else ">"
        else:
            sign = ">=" if self.drifted else "<"
        verdict = "drifted" if self.drifted else "no drift"
        return f"{self.column}: {self.method} {self.score:.4f} {sign} {self.threshold:g}: {verdict}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def column_drift(
    column: str,
    reference: ColumnProfile,
    current: ColumnProfile,
    threshold: float | None = None,
    any_reference_size: bool = False,
) -> ColumnDrift:
    """Drift of one column; `threshold`: the method's Evidently default when None.
    `any_reference_size`: a distance even for a small reference (a signal of our own, such as
    prediction drift, whose threshold is a distance whatever the reference's size)."""
    if reference_count(reference) <= SMALL_REFERENCE and not any_reference_size:
        raise SmallReference(
            f"{column}: the reference has {reference_count(reference)} values, at most "
            f"{SMALL_REFERENCE}: Evidently tests it with p-values on the rows"
        )
    if isinstance(reference, CategoryProfile) and isinstance(current, CategoryProfile):
        method, score = JENSEN_SHANNON, _jensen_shannon(reference.counts, current.counts)
    elif isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        method, score = _numeric_drift(reference, current)
    else:
        raise TypeError(f"{column}: reference and current profiles are of different kinds")
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    return ColumnDrift(column, method, score, "distance", limit, score >= limit)


def reference_count(profile: ColumnProfile) -> int:
    return profile.count


def _numeric_drift(reference: NumericProfile, current: NumericProfile) -> tuple[str, float]:
    values = _few_values(reference, current)
    if values is not None and len(values) <= 5:
        return JENSEN_SHANNON, _jensen_shannon(reference.few or {}, current.few or {})
    if not current.count:
        raise ValueError("the current window has no value in this column")
    ref_values, ref_counts = reference.histogram()
    cur_values, cur_counts = current.histogram()
    distance_ = wasserstein_distance(ref_values, cur_values, ref_counts, cur_counts)
    return WASSERSTEIN, float(distance_ / max(reference.std, 0.001))


def _few_values(reference: NumericProfile, current: NumericProfile) -> set[float] | None:
    if reference.few is None or current.few is None:
        return None
    return set(reference.few) | set(current.few)


def _jensen_shannon(reference: dict[Any, int], current: dict[Any, int]) -> float:
    """As Evidently computes it: frequencies over the values of either side, natural log."""
    keys = list(dict.fromkeys([*current, *reference]))
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    if not ref_total or not cur_total:
        raise ValueError("a side with no value cannot be compared")
    p = np.array([reference.get(k, 0) / ref_total for k in keys])
    q = np.array([current.get(k, 0) / cur_total for k in keys])
    return float(distance.jensenshannon(p, q))


def drifted_share(drifts: list[ColumnDrift]) -> float:
    return sum(d.drifted for d in drifts) / len(drifts) if drifts else 0.0
