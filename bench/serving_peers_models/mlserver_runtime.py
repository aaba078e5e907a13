"""MLServer serving a Loopline model folder, through MLServer's documented custom runtime API.

``bench/serving_peers.py`` (``start_mlserver``) copies this file next to a
``model-settings.json`` whose ``implementation`` is ``loopline_keras_runtime.LooplineKeras``
(the layout of MLServer's docs, ``docs/user-guide/custom.md``) and runs ``mlserver start``
on the folder. ``parameters.uri`` is the model folder (what Loopline's registry downloads:
``model.keras`` and ``saved_model/``); ``parameters.extra`` holds the feature names:
``{"numeric": [...], "categorical": [...]}``.

The model is loaded and called as Loopline does (``loopline.serving.artifacts``:
``keras.saving.load_model`` in safe mode, one ``tf.function`` with ``reduce_retracing``, a dict
of (rows, 1) tensors, float32 numbers and tf.string categories) and warmed up as a Loopline
replica is (1 row, then 2 rows), so no first request pays for tracing.

Inputs are decoded with MLServer's own codecs: ``NumpyCodec`` for the numbers and
``StringCodec`` for the categories (``NumpyCodec`` reads BYTES as fixed-width bytes, which
splits a variable-length string). The model is called synchronously inside ``predict``, as
MLServer's own runtimes (mlserver-sklearn, mlserver-xgboost) do: with ``parallel_workers``
>= 1 (the default, 1) ``predict`` runs in an inference worker process, not on the server's
event loop. TensorFlow is imported in ``load`` only, so the server's main process (which
instantiates this class but, with parallel workers, never loads it) does not import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

MODEL_FILE = "model.keras"  # loopline.registry.layout.MODEL_FILE


class LooplineKeras(MLModel):
    """One Loopline Keras model: named feature tensors in, "score" FP32 [rows] out."""

    async def load(self) -> bool:
        import keras
        import tensorflow as tf

        extra = (self.settings.parameters.extra or {}) if self.settings.parameters else {}
        self.numeric = list(extra.get("numeric", []))
        self.categorical = list(extra.get("categorical", []))
        folder = Path(await get_model_uri(self.settings))
        model = keras.saving.load_model(folder / MODEL_FILE, safe_mode=True)
        self.serve = tf.function(
            lambda inputs: model(inputs, training=False), reduce_retracing=True
        )
        for rows in (1, 2):  # as loopline.streaming.replica.warm_up
            warm = {n: np.zeros((rows, 1), np.float32) for n in self.numeric}
            warm |= {n: np.array([["warm-up"]] * rows, dtype=object) for n in self.categorical}
            self._score(warm)
        return True

    def _score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """loopline.serving.inputs.as_tensors + the compiled call."""
        import tensorflow as tf

        tensors = {name: tf.constant(values) for name, values in features.items()}
        return np.asarray(self.serve(tensors), dtype=np.float32).reshape(-1)

    def _features(self, payload: InferenceRequest) -> dict[str, np.ndarray]:
        """As loopline.serving.inputs.features_of: (rows, 1) float32 numbers, object strings."""
        by_name = {tensor.name: tensor for tensor in payload.inputs}
        missing = [n for n in self.numeric + self.categorical if n not in by_name]
        if missing:
            raise InferenceError(f"the request lacks input(s) {missing}")
        features: dict[str, Any] = {}
        for name in self.numeric:
            values = NumpyCodec.decode_input(by_name[name])
            features[name] = values.astype(np.float32, copy=False).reshape(-1, 1)
        for name in self.categorical:
            values = StringCodec.decode_input(by_name[name])
            features[name] = np.asarray(values, dtype=object).reshape(-1, 1)
        rows = {len(values) for values in features.values()}
        if len(rows) != 1:
            raise InferenceError(f"the inputs' row counts differ: {sorted(rows)}")
        return features

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        scores = self._score(self._features(payload))
        output = ResponseOutput(
            name="score", shape=[int(scores.shape[0])], datatype="FP32", data=scores.tolist()
        )
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[output],
        )
