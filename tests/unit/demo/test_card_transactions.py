"""The demo generator: seeded, schema-true to the demo spec, and its drift knobs bite."""

from __future__ import annotations

import numpy as np
import pytest
from loopline.demo.card_transactions import (
    NUMERIC_FEATURES,
    SCHEMA,
    UNSEEN_CATEGORIES,
    DriftKnobs,
    generate,
)
from loopline.spec import load_spec
from support.paths import PIPELINES


def test_same_seed_same_table_other_seed_other_table() -> None:
    assert generate(2_000, seed=11).equals(generate(2_000, seed=11))
    assert not generate(2_000, seed=11).equals(generate(2_000, seed=12))


def test_schema_matches_the_demo_spec() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml")
    assert SCHEMA.names == spec.data.column_names
    assert spec.model.features.numeric == NUMERIC_FEATURES


def test_keys_are_unique_and_fraud_rate_is_near_target() -> None:
    table = generate(50_000, seed=3, fraud_rate=0.05, batch_id="b1")
    ids = table.column("transaction_id").to_pylist()
    assert len(set(ids)) == len(ids) and ids[0] == "b1-00000000"
    assert abs(np.mean(table.column("is_fraud").to_numpy()) - 0.05) < 0.01


def test_label_depends_on_features() -> None:
    table = generate(50_000, seed=5)
    v1 = table.column("v1").to_numpy()
    fraud = table.column("is_fraud").to_numpy().astype(bool)
    assert v1[fraud].mean() > v1[~fraud].mean() + 0.5


def test_mean_shift_moves_only_the_chosen_features() -> None:
    base = generate(20_000, seed=8)
    drifted = generate(20_000, seed=8, drift=DriftKnobs(mean_shift=2.0, drifted_features=3))
    for name in ("v1", "v2", "v3"):
        shift = drifted.column(name).to_numpy().mean() - base.column(name).to_numpy().mean()
        assert shift == pytest.approx(2.0, abs=0.1)
    assert drifted.column("v4").equals(base.column("v4"))


def test_new_categories_and_label_shift() -> None:
    table = generate(20_000, seed=9, drift=DriftKnobs(new_category_share=0.25, label_shift=0.1))
    merchants = np.array(table.column("merchant_category").to_pylist())
    assert np.isin(merchants, UNSEEN_CATEGORIES).mean() == pytest.approx(0.25, abs=0.02)
    assert table.column("is_fraud").to_numpy().mean() == pytest.approx(0.15, abs=0.015)


@pytest.mark.parametrize(
    "knobs",
    [dict(drifted_features=31), dict(new_category_share=1.5)],
)
def test_out_of_range_knobs_are_refused(knobs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(knobs))):
        DriftKnobs(**knobs)
