"""Training with real TensorFlow on the CPU: a self-contained, seeded, reproducible model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from loopline.data.window import RunWindow
from loopline.serving.artifacts import load_model, save_artifacts
from loopline.serving.evaluate import evaluate, score
from loopline.storage.objects import ObjectStore
from loopline.training.snapshot import assemble_snapshot
from loopline.training.trainer import train_model
from support.validated_data import DEMO, demo_bucket, land_validated

SPEC = DEMO
# A few thousand rows learn in a few epochs with a larger step.
FAST = {"batch_size": 256, "learning_rate": 0.01}
SMALL = SPEC.model.model_copy(
    update={"hyperparameters": SPEC.model.hyperparameters.model_copy(update=FAST)}
)
# Pinned to the CPU, the only device with deterministic ops: the test holds on a GPU machine.
ON_CPU = SPEC.training.model_copy(update={"use_gpu_if_available": False})
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def store(s3) -> ObjectStore:
    return demo_bucket(s3)


def test_training_is_reproducible_and_the_saved_model_needs_no_preprocessing_code(
    store, tmp_path
) -> None:
    land_validated(store, NOW - timedelta(days=1), 6000, seed=3)
    snapshot = assemble_snapshot(store, SPEC, RunWindow(NOW, SPEC.training.window_days))
    first = train_model(snapshot.train, SMALL, ON_CPU, epochs=5)
    second = train_model(snapshot.train, SMALL, ON_CPU, epochs=5)
    scores = score(first.model, snapshot.holdout, SMALL)
    assert np.array_equal(scores, score(second.model, snapshot.holdout, SMALL))
    assert first.device == "CPU" and first.samples_per_second > 0

    save_artifacts(first.model, tmp_path / "model")
    reloaded = load_model(tmp_path / "model")
    assert np.allclose(score(reloaded, snapshot.holdout, SMALL), scores, atol=1e-6)
    assert (tmp_path / "model" / "saved_model" / "saved_model.pb").exists()

    evaluation = evaluate(first.model, snapshot.holdout, SMALL, SPEC.training.metrics)
    assert evaluation.metrics["auc"] > 0.75  # the label depends on the features
    assert 0 < evaluation.p99_latency_ms < 1000
