"""Drift scores from merged batch profiles against Evidently 0.7's own, on the same rows: the
same test per column, the same verdicts, and scores within the profiles' stated accuracy."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pytest
from loopline.data.profiles import BatchProfile, merge_all, profile_table
from loopline.demo.card_transactions import NUMERIC_FEATURES, DriftKnobs, generate
from loopline.drift.scores import SmallReference, column_drift

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


def evidently_value_drift(current: pa.Table, reference: pa.Table) -> dict[str, tuple]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    datasets = [
        Dataset.from_pandas(t.select(NUMERIC + CATEGORICAL).to_pandas(), data_definition=definition)
        for t in (current, reference)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(*datasets)
    return {
        metric["config"]["column"]: (
            metric["config"]["method"],
            metric["value"],
            metric["config"]["threshold"],
        )
        for metric in snapshot.dict()["metrics"]
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
    for column, (method, score, threshold) in theirs.items():
        drift = ours[column]
        assert drift.method == method, column
        assert drift.threshold == threshold, column
        assert drift.score == pytest.approx(score, abs=2e-3), column
        assert drift.drifted == (score >= threshold), column


def test_a_reference_of_1000_rows_or_fewer_is_left_to_evidentlys_p_value_tests() -> None:
    small = profile_table(generate(1000, seed=3), NUMERIC, CATEGORICAL)
    with pytest.raises(SmallReference, match="at most 1000"):
        column_drift("v1", small.columns["v1"], small.columns["v1"])
