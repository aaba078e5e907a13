"""Loading a registered Keras model: code inside the file is refused (safe mode), and a served
model needs no files once loaded, so its download folder is gone."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from loopline.registry import ModelRegistry
from loopline.serving import cache
from loopline.serving.artifacts import MODEL_FILE, load_model
from loopline.storage.objects import ObjectStore


def test_a_model_with_a_lambda_layer_is_refused(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input(shape=(2,))
    # A Lambda layer stores its Python function marshalled: loading it would run its code.
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / MODEL_FILE)

    with pytest.raises(ValueError, match="unsafe"):
        load_model(tmp_path)


def test_a_served_model_scores_after_its_folder_is_removed(s3, tmp_path, monkeypatch) -> None:
    import keras

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    model.save(artifacts / MODEL_FILE)
    registry = ModelRegistry(ObjectStore(s3.client()), "loopline")
    registry.store.ensure_bucket("loopline")
    version = registry.register("fraud", artifacts, metrics={}, input_schema=[]).version
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setattr(cache, "_SERVED", {})

    serve = cache.served_model("fraud", version, lambda: registry)

    assert list(root.iterdir()) == []
    rows = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert np.allclose(np.asarray(serve(rows)), model.predict(rows, verbose=0), atol=1e-6)
