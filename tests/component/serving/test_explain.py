"""SHAP through the serving layer on a model whose Shapley values are known: a linear score
over numbers plus a value per category. Each feature's attribution must be its term's
difference from the background's mean, on both paths (every coalition, permutations)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from loopline.serving.explain import ADDITIVITY_TOLERANCE, explain_rows, global_importance
from loopline.spec.sections import ModelSpec

CHANNEL_TERMS = {"web": 0.5, "pos": -0.25, "atm": 1.0}


def linear_model(numeric: list[str]) -> tuple[ModelSpec, np.ndarray, Any]:
    spec = ModelSpec.model_validate(
        {"features": {"numeric": numeric, "categorical": ["channel"]}, "label": "y"}
    )
    weights = np.linspace(-1.0, 2.0, len(numeric))

    def serve(inputs: dict[str, Any]) -> np.ndarray:
        """A served function's contract: tensors by feature name in, (rows, 1) scores out."""
        numbers = np.concatenate([np.asarray(inputs[name]) for name in numeric], axis=1)
        channels = np.asarray(inputs["channel"]).reshape(-1)
        terms = np.array([CHANNEL_TERMS[c.decode()] for c in channels])
        return (numbers @ weights + terms).reshape(-1, 1).astype(np.float32)

    return spec, weights, serve


def table(numeric: list[str], rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {name: pa.array(rng.normal(size=rows), pa.float32()) for name in numeric}
    channels = rng.choice(sorted(CHANNEL_TERMS), size=rows).tolist()
    return pa.table({**columns, "channel": pa.array(channels, pa.string())})


@pytest.mark.parametrize(
    ("features", "method"), [(3, "shap.Exact"), (14, "shap.Permutation")], ids=["exact", "perm"]
)
def test_attributions_are_each_features_term_against_the_background(features, method) -> None:
    numeric = [f"x{i}" for i in range(features)]
    spec, weights, serve = linear_model(numeric)
    rows, background = table(numeric, 4, seed=1), table(numeric, 20, seed=2)

    explanation = explain_rows(serve, spec, rows, background)

    assert explanation.method == method and explanation.background_rows == 20
    means = np.array([np.mean(background.column(n).to_numpy()) for n in numeric])
    channel_mean = np.mean([CHANNEL_TERMS[c] for c in background.column("channel").to_pylist()])
    for index, row in enumerate(explanation.rows):
        values = np.array([rows.column(n)[index].as_py() for n in numeric])
        expected = dict(zip(numeric, weights * (values - means), strict=True))
        expected["channel"] = CHANNEL_TERMS[rows.column("channel")[index].as_py()] - channel_mean
        assert row.attributions == pytest.approx(expected, abs=1e-5)
        assert row.additivity_gap <= ADDITIVITY_TOLERANCE
        assert row.score == pytest.approx(float(serve_row(serve, rows, index, numeric)), abs=1e-6)


def serve_row(serve: Any, rows: pa.Table, index: int, numeric: list[str]) -> float:
    one = rows.slice(index, 1)
    inputs = {n: np.asarray(one.column(n).to_numpy(), np.float32).reshape(-1, 1) for n in numeric}
    inputs["channel"] = np.array([[one.column("channel")[0].as_py().encode()]], dtype=object)
    return float(serve(inputs)[0, 0])


def test_global_importance_is_bounded_seeded_and_ranks_the_heaviest_term_first() -> None:
    numeric = [f"x{i}" for i in range(12)]
    spec, weights, serve = linear_model(numeric)
    holdout = table(numeric, 500, seed=3)

    first = global_importance(serve, spec, holdout, rows=16, background_rows=8)
    again = global_importance(serve, spec, holdout, rows=16, background_rows=8)

    assert first.values == again.values  # seeded: the same sample, the same permutations
    assert (first.rows, first.background_rows, first.method) == (16, 8, "shap.Permutation")
    assert first.library.startswith("shap ") and first.max_evals == 2 * (2 * 13 + 1)
    assert first.ranked()[0][0] == numeric[int(np.argmax(np.abs(weights)))]
    assert first.max_additivity_gap <= ADDITIVITY_TOLERANCE
