"""A version's stored feature importance, as training would store it, with chosen values."""

from __future__ import annotations

from loopline.registry.importance import FeatureImportance


def stored_importance(**values: float) -> FeatureImportance:
    return FeatureImportance(
        values=values,
        method="shap.Permutation",
        library="shap 0.51.0",
        rows=64,
        background_rows=32,
        seed=0,
        max_evals=130,
        max_additivity_gap=1e-9,
        seconds=1.2,
    )
