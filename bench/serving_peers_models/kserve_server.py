"""KServe serving a Loopline model folder, through KServe's documented custom-model API.

Run by ``bench/serving_peers.py`` (``start_kserve``) with the KServe venv's python:

    bench/.venv-kserve/bin/python bench/serving_peers_models/kserve_server.py CONFIG.json

CONFIG.json: {"model_dir", "name", "numeric": [...], "categorical": [...], "host",
"http_port", "grpc_port", "quiet"}. (A file, not flags: ``kserve.model_server`` parses
``sys.argv`` with its own flags when it is imported.)

The model: ``kserve.Model`` subclass, ``load()`` then ``async predict(InferRequest)`` returning
an ``InferResponse``, served by ``kserve.ModelServer(http_port, grpc_port, workers=1)``:
the API of KServe's docs and of ``python/custom_model`` in kserve/kserve. The Keras model is
loaded and called as Loopline does (``loopline.serving.artifacts``: ``keras.saving.load_model``
in safe mode, one ``tf.function`` with ``reduce_retracing``, a dict of (rows, 1) tensors,
float32 numbers and tf.string categories) and warmed up as a Loopline replica is (1 row, then
2 rows: the generalised trace), so no first request pays for tracing.

KServe runs a ``predict`` coroutine on its event loop (one uvicorn worker, the gRPC server
on the same loop); a blocking model call there would stall every other request, so the model
is called with ``asyncio.to_thread`` as KServe's docs advise for synchronous work. That runs
it on the loop's default executor, which ``ModelServer`` sets to
``min(32, cpu_count + 4)`` threads: concurrent requests score concurrently, each its own
model call (KServe's model server has no batching of its own for v2; its batcher is a
separate sidecar container for the v1 protocol).

Two things differ from a stock start, neither on the request path:
- the listen address: KServe hard-codes ``0.0.0.0`` (REST) and ``[::]`` (gRPC); here both
  listen on ``host`` (127.0.0.1);
- with ``quiet`` (the default the benchmark uses): no per-request lines. KServe's defaults
  print an access line (uvicorn) and a latency line (``enable_latency_logging``) for every
  request; a production deployment that ships logs per request pays for that, but Loopline's
  endpoint logs none, so the comparison turns them off: ``access_log=False``, latency logging
  off, KServe's loggers at WARNING (``KSERVE_LOGLEVEL``, set by the launcher). Its per-request
  Prometheus histograms and timing middleware stay: they cannot be turned off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import types
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.keras"  # loopline.registry.layout.MODEL_FILE


def _config() -> dict[str, Any]:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    return json.loads(Path(sys.argv[1]).read_text())


CONFIG = _config()

import kserve  # noqa: E402  (after the config: kserve parses sys.argv on import)
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402
from kserve.errors import InvalidInput  # noqa: E402


class LooplineKeras(kserve.Model):
    """One Loopline Keras model: named feature tensors in, "score" FP32 [rows] out."""

    def __init__(self, name: str, model_dir: str, numeric: list[str], categorical: list[str]):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.serve: Any = None
        self.ready = False

    def load(self) -> bool:
        import keras
        import tensorflow as tf

        model = keras.saving.load_model(self.model_dir / MODEL_FILE, safe_mode=True)
        self.serve = tf.function(
            lambda inputs: model(inputs, training=False), reduce_retracing=True
        )
        for rows in (1, 2):  # as loopline.streaming.replica.warm_up
            warm = {n: np.zeros((rows, 1), np.float32) for n in self.numeric}
            warm |= {n: np.array([["warm-up"]] * rows, dtype=object) for n in self.categorical}
            self._score(warm)
        self.ready = True
        return self.ready

    def _score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """loopline.serving.inputs.as_tensors + the compiled call (runs in a worker thread)."""
        import tensorflow as tf

        tensors = {name: tf.constant(values) for name, values in features.items()}
        return np.asarray(self.serve(tensors), dtype=np.float32).reshape(-1)

    def _features(self, payload: InferRequest) -> dict[str, np.ndarray]:
        """As loopline.serving.inputs.features_of: (rows, 1) float32 numbers, object strings."""
        by_name = {tensor.name: tensor for tensor in payload.inputs}
        missing = [n for n in self.numeric + self.categorical if n not in by_name]
        if missing:
            raise InvalidInput(f"the request lacks input(s) {missing}")
        features: dict[str, np.ndarray] = {}
        for name in self.numeric:
            values = by_name[name].as_numpy()
            features[name] = values.astype(np.float32, copy=False).reshape(-1, 1)
        for name in self.categorical:
            values = by_name[name].as_numpy()  # object array: str (JSON) or bytes (binary)
            features[name] = values.astype(object, copy=False).reshape(-1, 1)
        rows = {len(values) for values in features.values()}
        if len(rows) != 1:
            raise InvalidInput(f"the inputs' row counts differ: {sorted(rows)}")
        return features

    async def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        features = self._features(payload)
        scores = await asyncio.to_thread(self._score, features)
        output = InferOutput("score", [int(scores.shape[0])], "FP32")
        output.set_data_from_numpy(scores, binary_data=payload.use_binary_outputs)
        return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=[output])


def _listen_on(host: str, quiet: bool) -> None:
    """Bind host instead of KServe's hard-coded 0.0.0.0 / [::] (see the module's doc)."""
    import uvicorn
    from kserve.protocol.grpc import server as grpc_server

    base = uvicorn.Config

    class LocalConfig(base):  # type: ignore[misc, valid-type]
        def __init__(self, app: Any, **options: Any) -> None:
            options["host"] = host
            if quiet:
                options["access_log"] = False
            super().__init__(app, **options)

    uvicorn.Config = LocalConfig  # kserve.protocol.rest.server builds its Config from here
    real_aio = grpc_server.aio

    def local_server(*args: Any, **kwargs: Any) -> Any:
        server = real_aio.server(*args, **kwargs)
        add = server.add_insecure_port
        server.add_insecure_port = lambda address: add(address.replace("[::]", host, 1))
        return server

    grpc_server.aio = types.SimpleNamespace(server=local_server)


def main() -> int:
    started = time.perf_counter()
    quiet = bool(CONFIG.get("quiet", True))
    _listen_on(CONFIG.get("host", "127.0.0.1"), quiet)
    if quiet:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    model = LooplineKeras(
        CONFIG["name"], CONFIG["model_dir"], CONFIG["numeric"], CONFIG["categorical"]
    )
    model.load()
    print(f"kserve {version('kserve')}: model loaded in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
    kserve.ModelServer(
        http_port=int(CONFIG["http_port"]),
        grpc_port=int(CONFIG["grpc_port"]),
        workers=1,
        enable_latency_logging=not quiet,
    ).start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
