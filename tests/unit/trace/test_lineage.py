"""The parts of a trace that need no store: reading a stream prediction, finding a day."""

from __future__ import annotations

from datetime import UTC, datetime

from loopline.trace import StreamPrediction
from loopline.trace.lineage import _input_day


def test_a_stream_prediction_names_where_its_event_was_read() -> None:
    value = {
        "event_id": "e-1", "score": 0.25, "model_version": 3, "latency_ms": 12.5, "replica": 1,
        "input": {"topic": "card_fraud.transactions", "partition": 2, "offset": 41,
                  "timestamp_ms": 1_796_601_600_000},
    }  # fmt: skip
    prediction = StreamPrediction.from_value(value, "card_fraud.scores partition 0 offset 7")
    assert (prediction.topic, prediction.partition, prediction.offset) == (
        "card_fraud.transactions",
        2,
        41,
    )
    assert prediction.event_time == datetime(2026, 12, 7, tzinfo=UTC)
    assert (prediction.model_version, prediction.replica, prediction.kind) == (3, 1, "stream")


def test_a_prediction_from_a_replica_older_than_tracing_still_reads() -> None:
    old = {"event_id": 7, "score": 0.5, "model_version": 1, "latency_ms": 3.0, "replica": 0}
    prediction = StreamPrediction.from_value(old, "card_fraud.scores partition 0 offset 0")
    assert prediction.key == "7" and prediction.topic is None and prediction.event_time is None


def test_the_day_of_an_audited_batch_is_its_dt_folder() -> None:
    assert _input_day("s3://b/card_fraud/validated/dt=2026-12-06/a.parquet") == "2026-12-06"
    assert _input_day("s3://b/card_fraud/validated/a.parquet") is None
    assert _input_day("s3://b/x/dt=2026-13-45/a.parquet") is None
