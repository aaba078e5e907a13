"""A seeded synthetic "card transactions" feed with knobs to inject drift.

The schema mimics the classic card-fraud data set: 28 anonymised components ``v1..v28``,
``amount`` and ``card_age_days`` (30 float32 features), two categoricals and a binary label
that depends on the features, so a model trained on it has something real to learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopline.demo.columns import COMPONENTS, NUMERIC_FEATURES

MERCHANT_CATEGORIES = [
    "grocery",
    "fuel",
    "travel",
    "electronics",
    "fashion",
    "dining",
    "health",
    "entertainment",
]
MERCHANT_WEIGHTS = [0.24, 0.14, 0.08, 0.1, 0.12, 0.17, 0.08, 0.07]
UNSEEN_CATEGORIES = ["crypto_exchange", "quasi_cash", "gambling"]
ALL_MERCHANTS = np.array(MERCHANT_CATEGORIES + UNSEEN_CATEGORIES)
CHANNELS = ["pos", "online", "atm"]
CHANNEL_WEIGHTS = [0.6, 0.33, 0.07]
# How much each categorical value moves the log-odds of fraud.
MERCHANT_RISK = {
    "electronics": 0.9,
    "travel": 0.6,
    "fashion": 0.3,
    "crypto_exchange": 1.5,
    "quasi_cash": 1.2,
    "gambling": 1.0,
}
CHANNEL_RISK = {"online": 0.8, "atm": 0.4}

SCHEMA = pa.schema(
    [
        pa.field("transaction_id", pa.string(), nullable=False),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        *(pa.field(name, pa.float32(), nullable=False) for name in NUMERIC_FEATURES),
        pa.field("merchant_category", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("is_fraud", pa.int64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class DriftKnobs:
    """How far a batch departs from the reference distribution; all zero means no drift."""

    mean_shift: float = 0.0  # in standard deviations, added to the first `drifted_features`
    drifted_features: int = 0
    new_category_share: float = 0.0  # share of rows whose merchant is an unseen category
    label_shift: float = 0.0  # added to the base fraud rate

    def __post_init__(self) -> None:
        if not 0 <= self.drifted_features <= len(NUMERIC_FEATURES):
            raise ValueError(
                f"drifted_features must be between 0 and {len(NUMERIC_FEATURES)}, "
                f"got {self.drifted_features}"
            )
        if not 0.0 <= self.new_category_share <= 1.0:
            raise ValueError(f"new_category_share must be in [0, 1], got {self.new_category_share}")


def generate(
    rows: int,
    *,
    seed: int,
    fraud_rate: float = 0.05,
    drift: DriftKnobs = DriftKnobs(),
    batch_id: str = "batch",
    start: datetime | None = None,
) -> pa.Table:
    """Generate `rows` transactions; the same arguments always give the same table."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    numeric = _numeric_features(rng, rows)
    if drift.drifted_features and drift.mean_shift:
        stds = numeric[:, : drift.drifted_features].std(axis=0)
        numeric[:, : drift.drifted_features] += drift.mean_shift * stds
    merchants = rng.choice(len(MERCHANT_CATEGORIES), size=rows, p=MERCHANT_WEIGHTS)
    if drift.new_category_share:
        unseen = rng.random(rows) < drift.new_category_share
        merchants[unseen] = len(MERCHANT_CATEGORIES) + rng.integers(
            0, len(UNSEEN_CATEGORIES), size=int(unseen.sum())
        )
    channels = rng.choice(len(CHANNELS), size=rows, p=CHANNEL_WEIGHTS)
    target_rate = float(np.clip(fraud_rate + drift.label_shift, 0.001, 0.999))
    labels = _labels(rng, numeric, merchants, channels, target_rate)
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, 3_600_000_000, size=rows))
    columns = {
        "transaction_id": _transaction_ids(batch_id, rows),
        "event_time": pa.array(
            np.datetime64(start.replace(tzinfo=None), "us") + offsets, pa.timestamp("us", tz="UTC")
        ),
        **{name: pa.array(numeric[:, i], pa.float32()) for i, name in enumerate(NUMERIC_FEATURES)},
        "merchant_category": pa.array(ALL_MERCHANTS[merchants], pa.string()),
        "channel": pa.array(np.array(CHANNELS)[channels], pa.string()),
        "is_fraud": pa.array(labels, pa.int64()),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _transaction_ids(batch_id: str, rows: int) -> pa.Array:
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(rows)), pa.string()), 8, "0")
    return pc.binary_join_element_wise(batch_id, numbers, "-")


def _numeric_features(rng: np.random.Generator, rows: int) -> np.ndarray:
    components = rng.standard_normal((rows, len(COMPONENTS)), dtype=np.float32)
    amount = rng.lognormal(mean=3.5, sigma=1.1, size=rows).astype(np.float32)
    card_age_days = rng.exponential(scale=700.0, size=rows).astype(np.float32)
    return np.column_stack([components, amount, card_age_days])


def _labels(
    rng: np.random.Generator,
    numeric: np.ndarray,
    merchants: np.ndarray,
    channels: np.ndarray,
    target_rate: float,
) -> np.ndarray:
    # A fixed, sparse "true" model: the same weights whatever the seed, so every batch of a
    # feed obeys the same relationship between features and fraud.
    weights = np.zeros(len(NUMERIC_FEATURES), dtype=np.float64)
    weights[:8] = [1.2, -0.9, 0.8, 0.7, -0.6, 0.5, 0.4, -0.4]
    amount_effect = 0.5 * (np.log1p(numeric[:, -2]) - 3.5)
    young_card = 0.6 * (numeric[:, -1] < 90)
    score = numeric[:, :-2] @ weights[:-2] + amount_effect + young_card
    score += np.array([MERCHANT_RISK.get(m, 0.0) for m in ALL_MERCHANTS])[merchants]
    score += np.array([CHANNEL_RISK.get(c, 0.0) for c in CHANNELS])[channels]
    intercept = _intercept_for_rate(score, target_rate)
    probability = 1.0 / (1.0 + np.exp(-(score + intercept)))
    return (rng.random(len(score)) < probability).astype(np.int64)


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """Bisect the intercept so that the mean fraud probability equals `rate`."""
    score = score[:200_000]  # a large sample pins the rate; no need to scan 10M rows 40 times
    low, high = -30.0, 30.0
    for _ in range(40):
        middle = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(score + middle)))) < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def start_of_batch(logical_date: datetime | None) -> datetime:
    """Batches cover the hour before their logical date, like an hourly landing feed."""
    moment = logical_date or datetime.now(UTC)
    return moment.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
