"""Trigger forms come from typed models, with the spec model's own bounds."""

from __future__ import annotations

import pytest
from loopline.demo.columns import NUMERIC_FEATURES
from loopline.demo.params import FeedParams
from loopline.plan.params import bounds, params_from_model
from loopline.plan.training import TrainParams
from loopline.spec.sections import DemoSpec, HyperParameters, TrainingSpec


def test_bounds_are_read_from_the_spec_model() -> None:
    assert bounds(DemoSpec, "rows") == {"ge": 1, "le": 5_000_000}
    assert bounds(TrainingSpec, "window_days") == {"ge": 1, "le": 3650}
    with pytest.raises(ValueError, match=r"DemoSpec\.generator has no bounds"):
        bounds(DemoSpec, "generator")


def test_a_params_model_becomes_the_form_airflow_draws() -> None:
    params = {p.name: p for p in params_from_model(FeedParams, {"rows": 42})}
    rows = params["rows"]
    assert (rows.default, rows.title, rows.section) == (42, "Rows", "Batch")
    assert rows.schema == {"type": "integer", "minimum": 1, "maximum": 5_000_000}
    assert params["file_format"].schema == {"type": "string", "enum": ["parquet", "csv", "jsonl"]}
    assert params["seed"].schema == {"type": ["null", "integer"]}
    assert params["drifted_features"].schema["maximum"] == len(NUMERIC_FEATURES)
    assert params["mean_shift"].section == "Drift knobs"


def test_the_training_form_takes_its_bounds_from_the_spec() -> None:
    params = {p.name: p for p in params_from_model(TrainParams, {"epochs": 3, "window_days": 9})}
    assert params["epochs"].schema["maximum"] == bounds(HyperParameters, "epochs")["le"]
    assert (params["epochs"].default, params["window_days"].default) == (3, 9)
    assert params["reason"].default == "manual"
