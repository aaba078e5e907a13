"""Measuring a model's quality on a holdout (scikit-learn's metrics, seconds to import: not in
the unit tier), and its size on disk. The latency gate's measurement needs TensorFlow:
tests/integration/serving/test_model_files.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from loopline.serving.evaluate import quality, size_mb
from loopline.spec.sections import Metric

LABELS = np.array([0, 0, 1, 1, 0, 1], dtype=np.float32)


def test_a_perfect_ranking_scores_auc_one_and_every_threshold_metric_follows_half() -> None:
    scores = np.array([0.1, 0.3, 0.35, 0.8, 0.2, 0.9])  # every 1 above every 0; 0.35 < 0.5

    measured = quality(LABELS, scores, list(Metric))

    assert measured["auc"] == 1.0
    assert measured["accuracy"] == pytest.approx(5 / 6)
    assert measured["precision"] == 1.0 and measured["recall"] == pytest.approx(2 / 3)
    assert 0 < measured["logloss"] < 0.7


def test_only_the_metrics_asked_for_are_measured() -> None:
    measured = quality(LABELS, np.full(6, 0.5), [Metric.ACCURACY])
    assert measured == {"accuracy": 0.5}  # 0.5 decides "fraud": the three 1s are right


def test_a_holdout_of_one_class_has_no_auc_and_says_to_widen_the_window() -> None:
    with pytest.raises(ValueError, match="one class only: AUC is undefined; widen the window"):
        quality(np.zeros(4), np.full(4, 0.2), [Metric.AUC])
    assert quality(np.zeros(4), np.full(4, 0.2), [Metric.ACCURACY]) == {"accuracy": 1.0}


def test_the_size_of_a_model_is_its_files_in_mebibytes(tmp_path: Path) -> None:
    (tmp_path / "saved_model" / "variables").mkdir(parents=True)
    (tmp_path / "model.keras").write_bytes(bytes(1 << 20))
    (tmp_path / "saved_model" / "variables" / "data").write_bytes(bytes(1 << 19))

    assert size_mb(tmp_path) == 1.5
    assert size_mb(tmp_path / "model.keras") == 1.0
