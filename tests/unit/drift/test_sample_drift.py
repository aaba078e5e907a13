"""The p-value tests an audit runs itself when the reference is small (1,000 values or fewer),
chosen and decided as Evidently 0.7 chooses and decides them (its stattest registry and its
K-S, chi-square and Z-test functions); checked against Evidently itself on the same rows in
tests/integration/drift/test_scores_match_evidently.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from loopline.drift.scores import (
    CHI_SQUARE,
    KOLMOGOROV_SMIRNOV,
    Z_TEST,
    ColumnDrift,
    sample_drift,
)
from scipy.stats import chisquare, ks_2samp

RNG = np.random.default_rng(7)


def test_a_number_with_more_than_five_values_gets_the_ks_test_drifted_at_or_below() -> None:
    rng = np.random.default_rng(0)
    reference, current = rng.normal(size=800), rng.normal(0.5, size=3000)

    drift = sample_drift("v1", reference, current, categorical=False)

    assert drift.method == KOLMOGOROV_SMIRNOV and drift.score_kind == "p_value"
    assert drift.score == ks_2samp(reference, current).pvalue
    assert drift.threshold == 0.05 and drift.drifted
    calm = sample_drift("v1", reference, rng.normal(size=3000), categorical=False)
    assert not calm.drifted and calm.score > 0.05
    # K-S drifts at p <= threshold: the score itself as threshold is drifted
    assert sample_drift("v1", reference, current, False, threshold=drift.score).drifted


@pytest.mark.parametrize(
    ("values", "categorical", "method"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], False, CHI_SQUARE),  # 3-5 values: frequencies
        ([0.0, 1.0], False, Z_TEST),
        (["web", "pos", "app"], True, CHI_SQUARE),
        (["web", "pos"], True, Z_TEST),
        (["a", "b", "c", "d", "e", "f", "g"], True, CHI_SQUARE),  # a category never gets K-S
    ],
)
def test_few_values_or_categories_get_tests_of_their_frequencies(values, categorical, method):
    array = np.array(values, dtype=object if categorical else float)
    reference, current = RNG.choice(array, 600), RNG.choice(array, 2000)

    assert sample_drift("c", reference, current, categorical).method == method


def test_chi_square_compares_current_counts_with_the_reference_scaled_and_drifts_strictly():
    reference = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200, dtype=object)
    current = np.array(["a"] * 900 + ["b"] * 700 + ["c"] * 400, dtype=object)

    drift = sample_drift("c", reference, current, categorical=True)

    expected = chisquare([900, 700, 400], [1000, 600, 400]).pvalue
    assert drift.score == pytest.approx(expected, rel=1e-12) and drift.drifted
    # chi-square drifts at p < threshold: at exactly its score, not drifted
    assert not sample_drift("c", reference, current, True, threshold=drift.score).drifted
    assert drift.describe().startswith("c: chi-square p_value ") and " < 0.05: drifted" in (
        drift.describe()
    )


def test_a_value_the_reference_never_had_makes_chi_square_zero() -> None:
    reference = np.array(["a", "b", "c"] * 200, dtype=object)
    current = np.array(["a", "b", "c", "new"] * 500, dtype=object)

    drift = sample_drift("merchant", reference, current, categorical=True)

    assert drift.score == 0.0 and drift.drifted


def test_the_z_test_is_evidentlys_two_proportion_test_and_one_shared_value_is_no_drift():
    reference = np.array([0] * 700 + [1] * 300)
    current = np.array([0] * 1200 + [1] * 800)

    drift = sample_drift("is_fraud", reference, current, categorical=False)

    p1, p2, pooled = 0.3, 0.4, (300 + 800) / 3000
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 2000))
    assert drift.method == Z_TEST
    assert drift.score == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert drift.drifted
    same = sample_drift("is_fraud", np.zeros(500), np.zeros(900), categorical=False)
    assert same.method == Z_TEST and same.score == 1.0 and not same.drifted


def test_nulls_and_infinities_are_dropped_as_evidently_drops_them() -> None:
    reference = RNG.normal(size=700)
    current = RNG.normal(size=1500)
    dirty = np.concatenate([current, [np.nan, np.inf, -np.inf]])

    clean_numbers = sample_drift("v", reference, current, False)
    assert sample_drift("v", reference, dirty, False) == clean_numbers
    categories = np.array(["a", "b", None, "c", float("nan")] * 100, dtype=object)
    clean = np.array(["a", "b", "c"] * 100, dtype=object)
    assert sample_drift("c", clean, categories, True).score == pytest.approx(1.0)


def test_a_side_without_values_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="v: a side with no value"):
        sample_drift("v", np.array([np.nan]), RNG.normal(size=10), categorical=False)


def test_the_threshold_given_replaces_the_tests_default() -> None:
    reference, current = RNG.normal(size=800), RNG.normal(0.05, size=3000)
    drift = sample_drift("v", reference, current, False, threshold=0.9)
    assert drift.threshold == 0.9 and drift.drifted == (drift.score <= 0.9)


def test_describe_says_which_way_a_p_value_drifts() -> None:
    ks = ColumnDrift("v3", KOLMOGOROV_SMIRNOV, 0.01, "p_value", 0.05, True)
    assert ks.describe() == "v3: K-S p_value 0.0100 <= 0.05: drifted"
    z = ColumnDrift("is_fraud", Z_TEST, 0.2, "p_value", 0.05, False)
    assert z.describe() == "is_fraud: Z-test p_value 0.2000 >= 0.05: no drift"
