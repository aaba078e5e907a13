"""Where a prediction came from: `loopline trace` follows one key or event id from its
prediction back through the model version, its training run and snapshot, the landed file and
its validation (batch) or the topic, partition and offset (stream), and the drift audits of
its day, from records and outputs only, never from logs."""

from loopline.trace.lineage import (
    BatchPrediction,
    StreamPrediction,
    Trace,
    find_batch_prediction,
    trace_prediction,
)

__all__ = [
    "BatchPrediction",
    "StreamPrediction",
    "Trace",
    "find_batch_prediction",
    "trace_prediction",
]
