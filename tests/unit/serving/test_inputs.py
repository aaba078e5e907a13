"""The model's inputs from stored rows: one (rows, 1) column per feature, by name, numbers as
float32 and categories as Python strings, in row order."""

from __future__ import annotations

import numpy as np
from loopline.demo.card_transactions import generate
from loopline.serving.inputs import features_of, labels_of
from support.validated_data import DEMO

MODEL = DEMO.model
ROWS = generate(25, seed=4)


def test_each_feature_is_one_column_of_its_own_type() -> None:
    inputs = features_of(ROWS, MODEL)

    assert list(inputs) == [*MODEL.features.numeric, *MODEL.features.categorical]
    for name in MODEL.features.numeric:
        assert inputs[name].dtype == np.float32 and inputs[name].shape == (25, 1)
    for name in MODEL.features.categorical:
        assert inputs[name].dtype == object and inputs[name].shape == (25, 1)
        assert inputs[name][:, 0].tolist() == ROWS.column(name).to_pylist()
    assert np.array_equal(inputs["amount"][:, 0], ROWS.column("amount").to_numpy())


def test_columns_that_are_not_features_are_left_out() -> None:
    inputs = features_of(ROWS, MODEL)
    assert {"transaction_id", "event_time", MODEL.label}.isdisjoint(inputs)


def test_labels_are_float32_in_row_order() -> None:
    labels = labels_of(ROWS, MODEL)
    assert labels.dtype == np.float32
    assert labels.tolist() == ROWS.column(MODEL.label).to_pylist()
