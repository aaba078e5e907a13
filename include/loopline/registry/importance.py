"""A version's global feature importance, as its metadata stores it, and what reads it.

Computed once, on the version's holdout, when training registers it
(``loopline.serving.explain``); read by ``loopline models show``, by the promotion records
(which features moved the model) and by the drift audit (how much the drifted features matter
to the champion). Reading never recomputes: a version registered before importances existed
has none, and every reader says "not computed" instead of guessing.

Pure (pydantic only): the registry's metadata model and the stage records import it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NOT_COMPUTED = "not computed (registered before feature importances were stored)"


class FeatureImportance(BaseModel):
    """Mean |attribution| per feature over a seeded sample of the holdout, and how it was
    computed: enough to say what the numbers mean and to recompute them the same way."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[str, float] = Field(min_length=1)  # feature -> mean |SHAP value|, score units
    method: str  # "shap.Exact" or "shap.Permutation" (max_evals in `max_evals`)
    library: str  # "shap 0.51.0"
    rows: int = Field(ge=1)  # holdout rows explained (seeded sample)
    background_rows: int = Field(ge=1)  # rows the masked features are drawn from
    seed: int
    max_evals: int | None = None  # Permutation: model evaluations per row (x background)
    max_additivity_gap: float = Field(ge=0)  # max |base + sum(attributions) - score|
    seconds: float = Field(ge=0)

    def ranked(self) -> list[tuple[str, float]]:
        """Features, the most important first (ties by name, so the order is stable)."""
        return sorted(self.values.items(), key=lambda item: (-item[1], item[0]))

    def shares(self) -> dict[str, float]:
        """Each feature's share of the total importance (0..1); all zero for a flat model."""
        total = sum(self.values.values())
        return {name: (value / total if total else 0.0) for name, value in self.values.items()}

    def describe(self) -> str:
        """How it was computed, in one line."""
        evals = f", max_evals {self.max_evals}" if self.max_evals else ""
        return (
            f"{self.method} ({self.library}{evals}): mean |attribution| over {self.rows} "
            f"holdout rows, background {self.background_rows} rows, seed {self.seed}; "
            f"additivity gap <= {self.max_additivity_gap:.1e}; {self.seconds:.2f} s"
        )


class FeatureChange(BaseModel):
    """One feature's share of the total importance, in the candidate and in the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str
    candidate_share: float
    champion_share: float
    change: float  # candidate - champion


class ImportanceShift(BaseModel):
    """Which features moved the model, largest change first; `reason` when not computed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    computed: bool
    reason: str | None = None
    largest_changes: list[FeatureChange] = Field(default_factory=list)

    def describe(self) -> str:
        """One line for a record's reasons."""
        if not self.computed:
            return f"feature importance shift: {self.reason}"
        moved = ", ".join(f"{c.feature} {c.change:+.3f}" for c in self.largest_changes)
        return "feature importance shift (share of the total, candidate - champion): " + (
            moved or "none"
        )


def importance_shift(
    candidate: FeatureImportance | None, champion: FeatureImportance | None, top: int = 5
) -> ImportanceShift:
    """The candidate's importance shares against the champion's, the `top` largest changes.
    Shares, not raw values: two models whose scores spread differently would otherwise
    differ on every feature at once."""
    if candidate is None or champion is None:
        missing = "candidate" if candidate is None else "champion"
        return ImportanceShift(
            computed=False, reason=f"the {missing}'s importance is {NOT_COMPUTED}"
        )
    ours, theirs = candidate.shares(), champion.shares()
    changes = [
        FeatureChange(
            feature=name,
            candidate_share=round(ours.get(name, 0.0), 4),
            champion_share=round(theirs.get(name, 0.0), 4),
            change=round(ours.get(name, 0.0) - theirs.get(name, 0.0), 4),
        )
        for name in set(ours) | set(theirs)
    ]
    changes.sort(key=lambda change: (-abs(change.change), change.feature))
    return ImportanceShift(computed=True, largest_changes=changes[:top])


class DriftedFeature(BaseModel):
    """A drifted feature, and how much the model relies on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str
    importance: float  # the model's mean |attribution|
    share: float  # of the total importance
    rank: int  # 1: the model's most important feature


class DriftedImportance(BaseModel):
    """How much the drifted features matter to the champion; `reason` when not computed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    computed: bool
    reason: str | None = None
    version: int | None = None  # the champion whose importance it is
    features: list[DriftedFeature] = Field(default_factory=list)  # most important first
    total_share: float = 0.0  # 0: the drift touches nothing the model relies on

    def describe(self) -> str:
        """One line for the audit's reasons."""
        if not self.computed:
            return f"importance of the drifted features: {self.reason}"
        if not self.features:
            return "no feature drifted: nothing the champion relies on moved"
        parts = ", ".join(
            f"{f.feature} (rank {f.rank}, share {f.share:.3f})" for f in self.features
        )
        return (
            f"the drifted features carry {self.total_share:.1%} of champion v{self.version}'s "
            f"feature importance: {parts}"
        )


def drifted_importance(
    importance: FeatureImportance | None, drifted: list[str], version: int | None
) -> DriftedImportance:
    """Each drifted feature's importance to the champion `version`, and their total share."""
    if importance is None:
        reason = f"champion v{version}'s importance is {NOT_COMPUTED}"
        return DriftedImportance(computed=False, reason=reason, version=version)
    shares = importance.shares()
    ranks = {name: rank for rank, (name, _) in enumerate(importance.ranked(), start=1)}
    features = [
        DriftedFeature(
            feature=name,
            importance=importance.values[name],
            share=round(shares[name], 4),
            rank=ranks[name],
        )
        for name in drifted
        # A feature the champion does not take (added to the spec since) cannot matter to it.
        if name in importance.values
    ]
    features.sort(key=lambda feature: feature.rank)
    total = round(sum(feature.share for feature in features), 4)
    return DriftedImportance(computed=True, version=version, features=features, total_share=total)


__all__ = [
    "NOT_COMPUTED",
    "DriftedFeature",
    "DriftedImportance",
    "FeatureChange",
    "FeatureImportance",
    "ImportanceShift",
    "drifted_importance",
    "importance_shift",
]
