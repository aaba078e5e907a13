"""The pure parts of explanations: rows as SHAP sees them and back, the additivity check, the
sample, and how `loopline explain` prints one."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from loopline.commands.explain import ExplainedPrediction, describe
from loopline.serving.explain import (
    AdditivityError,
    Explanation,
    FlatCodec,
    RowExplanation,
    check_additivity,
    sample_rows,
)
from loopline.spec.sections import ModelSpec
from loopline.trace import BatchPrediction

MODEL = ModelSpec.model_validate(
    {
        "features": {"numeric": ["amount", "age"], "categorical": ["channel"]},
        "label": "is_fraud",
    }
)


def rows(amounts: list[float], channels: list[str]) -> pa.Table:
    return pa.table(
        {
            "amount": pa.array(amounts, pa.float32()),
            "age": pa.array([float(i) for i in range(len(amounts))], pa.float32()),
            "channel": pa.array(channels, pa.string()),
        }
    )


def explanation(*explained: RowExplanation) -> Explanation:
    return Explanation(list(explained), "shap.Exact", "shap 0.51.0", 100, None, 0, 0.1)


def test_rows_encode_to_numbers_and_codes_and_decode_to_the_same_table() -> None:
    explained, background = rows([1.5, 2.25], ["web", "pos"]), rows([0.1], ["atm"])
    codec = FlatCodec(MODEL, explained, background)

    flat = codec.encode(explained)

    assert codec.names == ["amount", "age", "channel"]
    assert flat.tolist() == [[1.5, 0.0, 2.0], [2.25, 1.0, 1.0]]  # atm 0, pos 1, web 2
    assert codec.decode(flat).equals(explained)
    assert codec.decode(codec.encode(background)).equals(background)


def test_attributions_that_do_not_add_up_to_the_score_are_refused() -> None:
    good = RowExplanation({"amount": 0.2, "channel": -0.05}, base_value=0.1, score=0.25)
    check_additivity(explanation(good))
    assert good.ranked() == [("amount", 0.2), ("channel", -0.05)]

    off = RowExplanation({"amount": 0.2}, base_value=0.1, score=0.31)
    with pytest.raises(AdditivityError, match=r"row 1: .*\(gap 1.00e-02 > tolerance 1e-06\)"):
        check_additivity(explanation(good, off))
    broken = RowExplanation({"amount": math.nan}, base_value=0.1, score=0.3)
    with pytest.raises(AdditivityError, match="row 0"):
        check_additivity(explanation(broken))


def test_a_sample_is_bounded_seeded_and_in_table_order() -> None:
    table = pa.table({"n": np.arange(1000)})
    first, again = sample_rows(table, 50, seed=1), sample_rows(table, 50, seed=1)
    assert first.equals(again) and first.num_rows == 50
    assert first.column("n").to_pylist() == sorted(first.column("n").to_pylist())
    assert not first.equals(sample_rows(table, 50, seed=2))
    assert sample_rows(table, 5000, seed=1).equals(table)


def test_the_explain_command_prints_attributions_by_size_and_the_additivity_check() -> None:
    row = RowExplanation(
        {"amount": 0.3, "age": -0.01, "channel": -0.04}, base_value=0.05, score=0.3
    )
    prediction = BatchPrediction("t-1", 0.3, 2, "2026-11-22", "s3://b/p.parquet", "run", "k")
    explained = ExplainedPrediction(
        prediction, {"amount": 912.5, "age": 3.0, "channel": "web"}, explanation(row), "bg"
    )

    text = describe(explained).splitlines()

    assert text[0] == "== batch prediction of t-1: score 0.300000 by model v2"
    assert [line.split()[0] for line in text[3:6]] == ["amount", "channel", "age"]
    assert text[3].split() == ["amount", "912.5000", "+0.300000"]
    assert text[-1].endswith("(gap 0.0e+00, tolerance 1e-06: ok)")
    assert explained.to_dict()["attributions"][1] == {
        "feature": "channel",
        "value": "web",
        "attribution": -0.04,
    }
