"""An audit's verdict: every score with its test and threshold, and which limits it crossed.

Four signals, each against the spec's `drift:` limits:
- feature drift: the share of model features that drifted, and any `key_features` drifted;
- label drift: the label's own distribution (where the current rows carry labels);
- prediction drift: the champion's batch scores in the window against its scores on its
  holdout (Wasserstein distance normed by the reference's standard deviation);
- quality: the champion's promotion metric on labelled current rows against its holdout
  value (performance decay; measured on the window's sample, see ``audit``).
Drifted is not invalid: it is a reason to retrain, recorded with its numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loopline.drift.scores import ColumnDrift
from loopline.spec.sections import LOWER_IS_BETTER, DriftSpec


@dataclass(frozen=True)
class QualityCheck:
    metric: str
    holdout: float  # the champion's, when it was trained
    current: float  # on the labelled rows of the window's sample
    rows: int

    @property
    def drop(self) -> float:
        """How much worse than on the holdout (for logloss, a rise)."""
        if self.metric in LOWER_IS_BETTER:
            return self.current - self.holdout
        return self.holdout - self.current


@dataclass(frozen=True)
class Verdict:
    window: str  # "2026-11-29 .. 2026-11-29"
    reference: str
    reference_version: int | None
    rows: int
    batches: int
    features: list[ColumnDrift]
    label: ColumnDrift | None = None
    prediction: ColumnDrift | None = None
    quality: QualityCheck | None = None
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why

    @property
    def drifted_features(self) -> list[str]:
        return [d.column for d in self.features if d.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    def crossed(self, limits: DriftSpec) -> list[str]:
        """Each limit crossed, said with its numbers; empty: within every limit."""
        reasons = []
        drifted = self.drifted_features
        if self.features and self.drifted_share >= limits.drifted_share_to_retrain:
            reasons.append(
                f"{len(drifted)} of {len(self.features)} features drifted "
                f"(share {self.drifted_share:.2f} >= drift.drifted_share_to_retrain "
                f"{limits.drifted_share_to_retrain}): {', '.join(drifted)}"
            )
        if key := [name for name in limits.key_features if name in drifted]:
            reasons.append(f"key feature(s) drifted (drift.key_features): {', '.join(key)}")
        if self.label is not None and self.label.drifted:
            reasons.append(f"label drift: {self.label.describe()}")
        if self.prediction is not None and self.prediction.drifted:
            reasons.append(f"prediction drift: {self.prediction.describe()}")
        quality = self.quality
        if quality is not None and quality.drop > limits.max_quality_drop:
            reasons.append(
                f"quality: {quality.metric} {quality.current:.4f} on {quality.rows:,} labelled "
                f"current rows vs {quality.holdout:.4f} on the champion's holdout (drop "
                f"{quality.drop:.4f} > drift.max_quality_drop {limits.max_quality_drop})"
            )
        return reasons

    def summary(self) -> str:
        parts = [
            f"{len(self.drifted_features)}/{len(self.features)} features drifted"
            + (f" ({', '.join(self.drifted_features)})" if self.drifted_features else "")
        ]
        if self.label is not None:
            parts.append(f"label {'drifted' if self.label.drifted else 'stable'}")
        if self.prediction is not None:
            parts.append(f"predictions {'drifted' if self.prediction.drifted else 'stable'}")
        if self.quality is not None:
            parts.append(f"{self.quality.metric} {self.quality.current:.4f}")
        return f"{self.window}, {self.rows:,} rows vs {self.reference}: " + "; ".join(parts)

    def numbers(self) -> dict[str, float]:
        numbers: dict[str, float] = {
            "rows": self.rows,
            "batches": self.batches,
            "features": len(self.features),
            "drifted_features": len(self.drifted_features),
            "drifted_share": round(self.drifted_share, 4),
        }
        if self.prediction is not None:
            numbers["prediction_score"] = self.prediction.score
        if self.quality is not None:
            numbers[f"{self.quality.metric}_current"] = self.quality.current
            numbers[f"{self.quality.metric}_holdout"] = self.quality.holdout
        return numbers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
