"""Drift scores against Evidently 0.7's own, on the same rows: from merged batch profiles (a
reference of more than 1,000 rows: distances), the same test per column, the same verdicts,
and scores within the profiles' stated accuracy; from the rows (1,000 or fewer: p-values),
the same test, threshold, verdict and score, computed by the audit's own scipy calls."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
from loopline.data.profiles import BatchProfile, merge_all, profile_table
from loopline.demo.card_transactions import NUMERIC_FEATURES, DriftKnobs, generate
from loopline.drift.scores import SmallReference, column_drift, sample_drift

NUMERIC = list(NUMERIC_FEATURES)
CATEGORICAL = ["merchant_category", "channel", "is_fraud"]
ROWS = 5000

CASES = {
    "undrifted": (DriftKnobs(), []),
    "mean shift on 5 features": (
        DriftKnobs(mean_shift=0.5, drifted_features=5),
        ["v1", "v2", "v3", "v4", "v5"],
    ),
    "unseen categories": (DriftKnobs(new_category_share=0.3), ["merchant_category"]),
    "label shift": (DriftKnobs(label_shift=0.2), ["is_fraud"]),
}


def evidently_value_drift(
    current: pa.Table,
    reference: pa.Table,
    numeric: list[str] = NUMERIC,
    categorical: list[str] = CATEGORICAL,
) -> dict[str, tuple]:
    """Per column: (method, score, threshold, drifted as Evidently's own test says)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    datasets = [
        Dataset.from_pandas(t.select(numeric + categorical).to_pandas(), data_definition=definition)
        for t in (current, reference)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Report([DataDriftPreset()], include_tests=True).run(*datasets).dict()
    failed = {
        test["name"].removeprefix("Value Drift for column ")
        for test in result["tests"]
        if test["name"].startswith("Value Drift for column ") and test["status"] == "FAIL"
    }
    return {
        metric["config"]["column"]: (
            metric["config"]["method"],
            metric["value"],
            metric["config"]["threshold"],
            metric["config"]["column"] in failed,
        )
        for metric in result["metrics"]
        if metric["config"].get("type", "").endswith("ValueDrift")
    }


@pytest.fixture(scope="module")
def reference() -> tuple[pa.Table, BatchProfile]:
    rows = generate(ROWS, seed=1)
    return rows, profile_table(rows, NUMERIC, CATEGORICAL)


@pytest.mark.parametrize("case", CASES)
def test_profile_scores_agree_with_evidently(reference, case: str) -> None:
    knobs, expected_drifted = CASES[case]
    reference_rows, reference_profile = reference
    current = generate(ROWS, seed=2, drift=knobs, batch_id=case)
    # The window arrives as five batches, each profiled when it was validated, then merged.
    batches = [current.slice(start, ROWS // 5) for start in range(0, ROWS, ROWS // 5)]
    stored = [profile_table(b, NUMERIC, CATEGORICAL).to_parquet() for b in batches]
    window = merge_all(BatchProfile.from_parquet(data) for data in stored)

    ours = {
        c: column_drift(c, reference_profile.columns[c], window.columns[c])
        for c in NUMERIC + CATEGORICAL
    }
    theirs = evidently_value_drift(current, reference_rows)

    assert sorted(c for c, d in ours.items() if d.drifted) == expected_drifted
    for column, (method, score, threshold, drifted) in theirs.items():
        drift = ours[column]
        assert drift.method == method, column
        assert drift.threshold == threshold, column
        assert drift.score == pytest.approx(score, abs=2e-3), column
        assert drift.drifted == drifted == (score >= threshold), column


def test_a_reference_of_1000_rows_or_fewer_cannot_be_scored_from_profiles() -> None:
    small = profile_table(generate(1000, seed=3), NUMERIC, CATEGORICAL)
    with pytest.raises(SmallReference, match="at most 1000"):
        column_drift("v1", small.columns["v1"], small.columns["v1"])


def with_few_values(table: pa.Table, seed: int, shift: float) -> pa.Table:
    """Two numeric columns of few values (Evidently's chi-square and Z-test on numbers)."""
    rng = np.random.default_rng(seed)
    rows = table.num_rows
    few = rng.choice([0.0, 1.0, 2.0, 3.0], size=rows, p=[0.4 - shift, 0.3, 0.2, 0.1 + shift])
    two = (rng.random(rows) < 0.3 + shift).astype(np.int64)
    return table.append_column("visits", pa.array(few)).append_column("flag", pa.array(two))


SMALL_NUMERIC = [*NUMERIC, "visits", "flag"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("reference_rows", [1000, 300])
def test_p_value_tests_on_the_rows_agree_with_evidently(case: str, reference_rows: int) -> None:
    """A reference of 1,000 rows or fewer: the audit's scipy tests against Evidently's."""
    knobs, expected_drifted = CASES[case]
    shift = 0.1 if knobs != DriftKnobs() else 0.0
    reference = with_few_values(generate(reference_rows, seed=1), 1, 0.0)
    current = with_few_values(generate(ROWS, seed=2, drift=knobs, batch_id=case), 2, shift)

    theirs = evidently_value_drift(current, reference, SMALL_NUMERIC, CATEGORICAL)

    methods, found = set(), set()
    for column, (method, score, threshold, drifted) in theirs.items():
        drift = sample_drift(
            column,
            reference.column(column).to_numpy(),
            current.column(column).to_numpy(),
            categorical=column in CATEGORICAL,
        )
        methods.add(drift.method)
        assert (drift.method, drift.threshold) == (method, threshold), column
        assert drift.score == pytest.approx(score, rel=1e-9, abs=1e-12), column
        assert drift.drifted == drifted, column
        if drift.drifted:
            found.add(column)
    assert methods == {"K-S p_value", "chi-square p_value", "Z-test p_value"}
    assert set(expected_drifted) <= found
