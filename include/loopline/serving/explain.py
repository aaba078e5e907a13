"""Why a model scored what it did: per-row SHAP attributions and a global feature importance.

The model is explained through the function production calls: a served (compiled) model
scoring a table of stored rows (``serving.inputs.served_scores``), so an explanation adds up
to the score batch scoring and the consumers write. SHAP's gradient explainers cannot differentiate
through the model's StringLookup + Embedding inputs (see the reference notes), so the
model-agnostic ones are used: SHAP sees each row as one flat vector (the numbers, then each
category as a code into the values seen in the rows and the background), and the function
it calls decodes the codes back to strings before scoring. A masked feature takes the
background's values (``shap.maskers.Independent``); with 10 features or fewer every
coalition is evaluated (``shap.explainers.Exact``), above that antithetic permutations
(``shap.explainers.Permutation``). Both add up exactly: base value + sum of attributions =
score, up to floating point (``ADDITIVITY_TOLERANCE``, checked on every row).

shap, TensorFlow and numba load inside the functions only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from loopline.registry.importance import FeatureImportance
from loopline.serving.inputs import served_scores
from loopline.spec.sections import ModelSpec

if TYPE_CHECKING:
    from loopline.serving.artifacts import ServingFunction

# |base + sum(attributions) - score|, in the score's units (a probability): both explainers
# add up by construction (every coalition; or each permutation telescopes from the
# background's mean to the row's score), so only float64 rounding over the model's float32
# scores is left (~1e-8 seen).
ADDITIVITY_TOLERANCE = 1e-6
EXACT_MAX_FEATURES = 10  # 2^10 coalitions per row; above that, permutations (as shap's auto)
BACKGROUND_ROWS = 100  # for one prediction (`loopline explain`)
PERMUTATIONS = 10  # antithetic pairs per explained row (shap's default: 10 * 2 * features)
# The global importance at registration: a bounded, seeded sample, priced to stay a few
# seconds on 2 cores for the demo model (32 features; measured in the README's section).
IMPORTANCE_ROWS = 64
IMPORTANCE_BACKGROUND_ROWS = 32
IMPORTANCE_PERMUTATIONS = 2
SEED = 0


class AdditivityError(ValueError):
    """Attributions that do not add up to the score: the explanation is not to be trusted."""


@dataclass(frozen=True)
class RowExplanation:
    attributions: dict[str, float]  # feature -> its share of (score - base), model order
    base_value: float  # the mean score over the background
    score: float  # the model's score of the row, through the served function

    @property
    def additivity_gap(self) -> float:
        return abs(self.base_value + sum(self.attributions.values()) - self.score)

    def ranked(self) -> list[tuple[str, float]]:
        """Features by |attribution|, largest first."""
        return sorted(self.attributions.items(), key=lambda item: (-abs(item[1]), item[0]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_value": self.base_value,
            "score": self.score,
            "additivity_gap": self.additivity_gap,
            "attributions": dict(self.ranked()),
        }


@dataclass(frozen=True)
class Explanation:
    rows: list[RowExplanation]
    method: str  # "shap.Exact" or "shap.Permutation"
    library: str
    background_rows: int
    max_evals: int | None  # Permutation only
    seed: int
    seconds: float

    @property
    def max_additivity_gap(self) -> float:
        return max(row.additivity_gap for row in self.rows)

    def describe(self) -> str:
        evals = f", max_evals {self.max_evals}" if self.max_evals else ""
        return (
            f"{self.method} ({self.library}{evals}), background {self.background_rows} rows, "
            f"seed {self.seed}"
        )


class FlatCodec:
    """Rows as SHAP sees them (one float vector each: the numbers, then category codes) and
    back to a table the served model scores. Codes index the categories of the rows and the
    background, so every value a masked row can take decodes to a real category."""

    def __init__(self, spec: ModelSpec, *tables: pa.Table) -> None:
        self.spec = spec
        self.categories = {
            name: np.unique(
                np.concatenate(
                    [np.asarray(table.column(name).to_pylist(), dtype=object) for table in tables]
                ).astype(str)
            )
            for name in spec.features.categorical
        }

    @property
    def names(self) -> list[str]:
        return [*self.spec.features.numeric, *self.spec.features.categorical]

    def encode(self, table: pa.Table) -> np.ndarray:
        columns = [
            table.column(name).to_numpy().astype(np.float32).astype(np.float64)
            for name in self.spec.features.numeric
        ]
        for name in self.spec.features.categorical:
            values = np.asarray(table.column(name).to_pylist(), dtype=object).astype(str)
            columns.append(np.searchsorted(self.categories[name], values).astype(np.float64))
        return np.stack(columns, axis=1)

    def decode(self, matrix: np.ndarray) -> pa.Table:
        numeric = self.spec.features.numeric
        columns: dict[str, pa.Array] = {
            name: pa.array(matrix[:, i].astype(np.float32)) for i, name in enumerate(numeric)
        }
        for offset, name in enumerate(self.spec.features.categorical, start=len(numeric)):
            codes = matrix[:, offset].astype(np.int64)
            columns[name] = pa.array(self.categories[name][codes].tolist(), pa.string())
        return pa.table(columns)


def explain_rows(
    serve: ServingFunction,
    spec: ModelSpec,
    rows: pa.Table,
    background: pa.Table,
    *,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> Explanation:
    """Attributions of every row of `rows` against `background` (all of its rows: sample it
    first, see `sample_rows`). Raises AdditivityError if a row's attributions do not add up
    to its score within ADDITIVITY_TOLERANCE."""
    import tensorflow as tf

    if rows.num_rows == 0 or background.num_rows == 0:
        raise ValueError(
            f"nothing to explain: {rows.num_rows} row(s) against a background of "
            f"{background.num_rows}; both need at least one"
        )
    # On the CPU, as the latency gate measures, even where a GPU is visible: a GPU may reduce
    # a batch of thousands of masked rows in another order than one row, which would move
    # the additivity gap beyond its tolerance. On the CPU it stays ~1e-9, with mixed
    # precision too (measured).
    with tf.device("CPU:0"):
        explanation = _explain(serve, spec, rows, background, permutations, seed)
    check_additivity(explanation)
    return explanation


def _explain(
    serve: ServingFunction,
    spec: ModelSpec,
    rows: pa.Table,
    background: pa.Table,
    permutations: int,
    seed: int,
) -> Explanation:
    shap = _import_shap()
    started = time.perf_counter()
    codec = FlatCodec(spec, rows, background)
    matrix, reference = codec.encode(rows), codec.encode(background)

    def probability(flat: np.ndarray) -> np.ndarray:
        return served_scores(serve, codec.decode(flat), spec).astype(np.float64)

    masker = shap.maskers.Independent(reference, max_samples=len(reference))
    features = len(codec.names)
    max_evals: int | None = None
    if features <= EXACT_MAX_FEATURES:
        method = "shap.Exact"
        explained = shap.explainers.Exact(probability, masker, feature_names=codec.names)(matrix)
    else:
        method = "shap.Permutation"
        max_evals = permutations * (2 * features + 1)
        explainer = shap.explainers.Permutation(
            probability, masker, feature_names=codec.names, seed=seed
        )
        explained = explainer(matrix, max_evals=max_evals, silent=True)
    scores = probability(matrix)
    return Explanation(
        rows=[
            RowExplanation(
                attributions=dict(zip(codec.names, map(float, values), strict=True)),
                base_value=float(base),
                score=float(score),
            )
            for values, base, score in zip(
                explained.values, explained.base_values, scores, strict=True
            )
        ],
        method=method,
        library=f"shap {installed_version('shap')}",
        background_rows=background.num_rows,
        max_evals=max_evals,
        seed=seed,
        seconds=time.perf_counter() - started,
    )


def _import_shap() -> Any:
    """shap, with its numba kernels left as plain Python. They are not cached on disk
    (``@njit`` without ``cache=True``), so every process would compile them on first use:
    6.5 s on 2 cores, where the whole registration-time importance takes 1 s, and the Python
    versions cost 0.15 s more of it (measured; see the README's explanations section). Only
    shap's own functions are affected: numba reads the switch when a function is decorated,
    which for shap's happens once, at its import, here."""
    import sys

    if "shap" not in sys.modules:
        import numba

        config: Any = numba.config  # numba ships no types for its settings
        jit_was_disabled = config.DISABLE_JIT
        config.DISABLE_JIT = True
        try:
            import shap  # type: ignore[import-untyped]
        finally:
            config.DISABLE_JIT = jit_was_disabled
    import shap

    return shap


def check_additivity(explanation: Explanation, tolerance: float = ADDITIVITY_TOLERANCE) -> None:
    """Refuse attributions that do not add up to the score."""
    for index, row in enumerate(explanation.rows):
        if not row.additivity_gap <= tolerance:  # `not <=`: a NaN gap fails too
            raise AdditivityError(
                f"row {index}: base {row.base_value:.6f} + attributions "
                f"{sum(row.attributions.values()):.6f} != score {row.score:.6f} (gap "
                f"{row.additivity_gap:.2e} > tolerance {tolerance:.0e}); {explanation.describe()}"
            )


def sample_rows(table: pa.Table, count: int, seed: int) -> pa.Table:
    """At most `count` rows of `table`, drawn without replacement by `seed`, in table order."""
    if table.num_rows <= count:
        return table
    chosen = np.sort(np.random.default_rng(seed).choice(table.num_rows, count, replace=False))
    return table.take(pa.array(chosen))


def global_importance(
    serve: ServingFunction,
    spec: ModelSpec,
    holdout: pa.Table,
    *,
    rows: int = IMPORTANCE_ROWS,
    background_rows: int = IMPORTANCE_BACKGROUND_ROWS,
    permutations: int = IMPORTANCE_PERMUTATIONS,
    seed: int = SEED,
) -> FeatureImportance:
    """Mean |attribution| per feature over a seeded sample of `holdout`, against a seeded
    background drawn from the same holdout (a different draw)."""
    explained = sample_rows(holdout, rows, seed)
    background = sample_rows(holdout, background_rows, seed + 1)
    explanation = explain_rows(
        serve, spec, explained, background, permutations=permutations, seed=seed
    )
    names = list(explanation.rows[0].attributions)
    magnitudes = np.abs([[row.attributions[name] for name in names] for row in explanation.rows])
    return FeatureImportance(
        values=dict(zip(names, map(float, magnitudes.mean(axis=0)), strict=True)),
        method=explanation.method,
        library=explanation.library,
        rows=explained.num_rows,
        background_rows=background.num_rows,
        seed=seed,
        max_evals=explanation.max_evals,
        max_additivity_gap=explanation.max_additivity_gap,
        seconds=round(explanation.seconds, 3),
    )


__all__ = [
    "ADDITIVITY_TOLERANCE",
    "AdditivityError",
    "Explanation",
    "FlatCodec",
    "RowExplanation",
    "check_additivity",
    "explain_rows",
    "global_importance",
    "sample_rows",
]
