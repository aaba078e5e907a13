"""The GPU path of training (mixed precision, XLA), where a GPU is visible; skipped elsewhere.

What runs here is what the ``<pipeline>.train`` task runs; the model it saves must serve
anywhere, CPU included, with scores close to the GPU's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from loopline.demo.card_transactions import generate
from loopline.serving.artifacts import load_model, save_artifacts
from loopline.serving.evaluate import evaluate, score
from loopline.spec import load_spec
from loopline.training.snapshot import holdout_mask
from loopline.training.trainer import train_model
from support.paths import PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")


def test_training_uses_the_gpu_and_the_model_serves_on_the_cpu(tmp_path) -> None:
    import tensorflow as tf

    rows = generate(50_000, seed=5, start=datetime.now(UTC) - timedelta(days=1))
    in_holdout = holdout_mask(rows.column("transaction_id"), 0.2)
    train, holdout = rows.filter(~in_holdout), rows.filter(in_holdout)

    outcome = train_model(train, SPEC.model, SPEC.training, epochs=3)

    assert outcome.device.startswith("GPU:0"), outcome.device
    assert "mixed precision" in outcome.device and outcome.samples_per_second > 0
    assert evaluate(outcome.model, holdout, SPEC.model, SPEC.training.metrics).metrics["auc"] > 0.75
    save_artifacts(outcome.model, tmp_path / "model")
    with tf.device("CPU:0"):
        on_cpu = score(load_model(tmp_path / "model"), holdout, SPEC.model)
    assert np.allclose(on_cpu, score(outcome.model, holdout, SPEC.model), atol=2e-2)
