"""What a replica's shadow thread writes, without a replica: the champion's and the
challenger's scores of the same events, through the real prediction log writer."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
from loopline.data.prediction_log import SHADOW, SHADOW_CHAMPION, log_prefix
from loopline.spec import PipelineSpec
from loopline.storage.objects import ObjectStore
from loopline.streaming.prediction_log import Logged, PredictionLog


def spread(rows: int) -> np.ndarray:
    """The champion's scores: evenly over [0, 1]."""
    return np.linspace(0.0, 1.0, rows, dtype=np.float32)


def shadow_log(
    store: ObjectStore,
    spec: PipelineSpec,
    theirs: np.ndarray,
    *,
    champion: int = 1,
    challenger: int = 2,
) -> None:
    """One shadow pair per score in `theirs`: the champion scored the same events `spread`,
    both in 2 ms per call, logged today."""
    rows = len(theirs)
    writer = PredictionLog(lambda: store, spec.data.bucket, log_prefix(spec), "slot0-1", spec.model)
    ids = [f"e{i}" for i in range(rows)]
    table = pa.table({"amount": pa.array(np.zeros(rows), pa.float32())})
    now = time.time()
    for source, scores, version in (
        (SHADOW_CHAMPION, spread(rows), champion),
        (SHADOW, theirs, challenger),
    ):
        writer.add(Logged(source, ids, lambda: table, scores, version, [2.0] * rows, now))
    writer.flush()
    assert writer.summary()["last_error"] is None
