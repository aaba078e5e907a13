"""Per-column drift scores from profiles, with the test Evidently would choose.

Evidently 0.7's default test depends on the reference's size and the column (its stattest
registry, ``_get_default_stattest``). Above 1,000 reference rows, which is every audit here:
a number with more than 5 distinct values gets the Wasserstein distance normed by the
reference's standard deviation; fewer values, or a category, the Jensen-Shannon distance
between value frequencies; both are distances (drift when >= 0.1 by default). At 1,000 rows or
fewer Evidently switches to p-value tests on the rows themselves (K-S, chi-square, Z), which a
profile cannot reproduce: ``SmallReference`` says so, and ``sample_drift`` runs the test
Evidently would choose on the rows (the reference's sample then holds all of them), with the
same scipy calls and the same drift rule, so no audit needs Evidently to reach its verdict.

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
from scipy.stats import chisquare, ks_2samp, norm, wasserstein_distance

from loopline.data.profiles import CategoryProfile, ColumnProfile, NumericProfile

SMALL_REFERENCE = 1000  # Evidently's switch from p-value tests to distances
WASSERSTEIN = "Wasserstein distance (normed)"  # Evidently's method names, as its reports say
JENSEN_SHANNON = "Jensen-Shannon distance"
KOLMOGOROV_SMIRNOV = "K-S p_value"
CHI_SQUARE = "chi-square p_value"
Z_TEST = "Z-test p_value"
DEFAULT_THRESHOLDS = {
    WASSERSTEIN: 0.1,
    JENSEN_SHANNON: 0.1,
    KOLMOGOROV_SMIRNOV: 0.05,
    CHI_SQUARE: 0.05,
    Z_TEST: 0.05,
}
# Evidently's K-S test drifts at p <= threshold, its chi-square and Z tests at p < threshold.
STRICT_P_VALUE = frozenset({CHI_SQUARE, Z_TEST})
FEW_FOR_FREQUENCIES = 5  # at most this many distinct values: a test of value frequencies


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
        a distance drifts at or above its threshold, a p-value at or below it (strictly below
        for chi-square and Z, as Evidently decides)."""
        if self.score_kind == "p_value":
            strict = self.method in STRICT_P_VALUE
            sign = ("<" if strict else "<=") if self.drifted else (">=" if strict else ">")
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


def sample_drift(
    column: str,
    reference: np.ndarray,
    current: np.ndarray,
    categorical: bool,
    threshold: float | None = None,
) -> ColumnDrift:
    """The p-value test Evidently 0.7 runs on the rows of a small reference (1,000 values or
    fewer): `reference` and `current` are a column's values (nulls and infinities are dropped
    here, as Evidently drops them). Its registry's choice: a number with more than 5 distinct
    values (over both sides) gets the two-sample K-S test; 3 to 5 values, or a category with
    more than 2, chi-square on the value counts; 2 or fewer, the Z-test of two proportions.
    `threshold`: the test's default (0.05) when None."""
    reference, current = _present(reference), _present(current)
    if not len(reference) or not len(current):
        raise ValueError(f"{column}: a side with no value cannot be compared")
    values = len(np.unique(np.concatenate([reference, current])))
    if not categorical and values > FEW_FOR_FREQUENCIES:
        method, score = KOLMOGOROV_SMIRNOV, float(ks_2samp(reference, current)[1])
    elif values > 2:
        method, score = CHI_SQUARE, _chi_square(reference, current)
    else:
        method, score = Z_TEST, _z_test(reference, current)
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    drifted = score < limit if method in STRICT_P_VALUE else score <= limit
    return ColumnDrift(column, method, score, "p_value", limit, drifted)


def _present(values: np.ndarray) -> np.ndarray:
    """Without nulls (None, NaN) and infinities, as Evidently cleans a column."""
    values = np.asarray(values)
    if values.dtype.kind in "fc":
        return values[np.isfinite(values)]
    if values.dtype.kind == "O":
        kept = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
        return np.array(kept, dtype=object)
    return values


def _counts(values: np.ndarray) -> dict[Any, int]:
    found, counts = np.unique(values, return_counts=True)
    return dict(zip(found.tolist(), counts.tolist(), strict=True))


def _chi_square(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's chi-square: the current counts against the reference's, scaled to the
    current size (a value the reference never had makes the p-value 0)."""
    ref_counts, cur_counts = _counts(reference), _counts(current)
    keys = list({*ref_counts, *cur_counts})
    scale = len(current) / len(reference)
    expected = [ref_counts.get(key, 0) * scale for key in keys]
    observed = [cur_counts.get(key, 0) for key in keys]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(observed, expected)[1])


def _z_test(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's two-proportion Z-test (two-sided) on the share of the smallest value."""
    ref_values, cur_values = np.unique(reference), np.unique(current)
    if len(ref_values) == 1 and len(cur_values) == 1 and ref_values[0] == cur_values[0]:
        return 1.0
    first = min(np.concatenate([ref_values, cur_values]).tolist())
    ref_share = float(np.mean(reference != first))
    cur_share = float(np.mean(current != first))
    n_ref, n_cur = len(reference), len(current)
    pooled = (ref_share * n_ref + cur_share * n_cur) / (n_ref + n_cur)
    z = (ref_share - cur_share) / np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def drifted_share(drifts: list[ColumnDrift]) -> float:
    return sum(d.drifted for d in drifts) / len(drifts) if drifts else 0.0
