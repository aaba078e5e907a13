"""A model's files and its compiled serving, with real TensorFlow: the SavedModel export sits
next to the Keras file and both load to the same scores, and the compiled function a replica
or a Spark task serves scores as Keras does, for a batch of any size. The model is the
trainer's own architecture, untrained: serving must not care how good it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from loopline.demo.card_transactions import generate
from loopline.serving.artifacts import (
    MODEL_FILE,
    SAVED_MODEL_DIR,
    compiled,
    load_model,
    save_artifacts,
)
from loopline.serving.evaluate import p99_single_row_latency_ms, score
from loopline.serving.inputs import features_of, served_scores
from loopline.training.trainer import build_model
from support.validated_data import DEMO

MODEL = DEMO.model
ROWS = generate(300, seed=5)


@pytest.fixture(scope="module")
def model():
    return build_model(MODEL, features_of(ROWS, MODEL))


def test_saved_artifacts_hold_both_formats_and_load_to_the_same_scores(model, tmp_path: Path):
    save_artifacts(model, tmp_path / "v1")

    assert (tmp_path / "v1" / MODEL_FILE).is_file()
    assert (tmp_path / "v1" / SAVED_MODEL_DIR / "saved_model.pb").is_file()
    reloaded = score(load_model(tmp_path / "v1"), ROWS, MODEL)
    assert np.allclose(reloaded, score(model, ROWS, MODEL), atol=1e-6)


def test_the_compiled_function_scores_as_keras_does_for_any_batch_size(model) -> None:
    expected = score(model, ROWS, MODEL)
    serve = compiled(model)

    for rows in (1, 7, 300):  # one trace serves them all (reduce_retracing)
        served = served_scores(serve, ROWS.slice(0, rows), MODEL)
        assert served.shape == (rows,)
        assert np.allclose(served, expected[:rows], atol=1e-5)


def test_single_row_latency_is_measured_in_milliseconds(model) -> None:
    latency = p99_single_row_latency_ms(model, ROWS, MODEL)
    assert 0 < latency < 1000
