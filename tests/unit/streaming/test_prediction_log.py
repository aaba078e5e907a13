"""The prediction log writer never stops scoring: what S3 refuses is kept for the next try,
within a bound, and what the bound drops is counted (tests/integration/drift writes it to a
real S3 server and audits it)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from loopline.spec.sections import Features, ModelSpec
from loopline.streaming.prediction_log import Logged, PredictionLog

MODEL = ModelSpec(features=Features(numeric=["amount"], categorical=[]), label="y")


class FlakyStore:
    def __init__(self) -> None:
        self.down = True
        self.objects: dict[str, bytes] = {}

    def put_new(self, bucket: str, key: str, data: bytes) -> None:
        if self.down:
            raise ConnectionError("S3 is down")
        self.objects[key] = data


def entry(rows: int, version: int = 1, at: float = 1_796_601_600.0) -> Logged:
    table = pa.table({"amount": pa.array(np.arange(rows), pa.float32())})
    ids = [f"e{i}" for i in range(rows)]
    scores = np.full(rows, 0.25, np.float32)
    return Logged("kafka", ids, lambda: table, scores, version, [2.0] * rows, at)


def test_what_s3_refuses_is_kept_bounded_and_written_once_it_is_back() -> None:
    store = FlakyStore()
    writer = PredictionLog(lambda: store, "b", "p/prediction-log/", "slot0-1", MODEL, max_rows=25)
    for _ in range(3):
        writer.add(entry(10))
    assert writer.summary()["dropped"] == 10  # 30 > 25: the oldest call's 10 rows

    writer.flush()
    assert writer.summary() == {"logged": 0, "pending": 20, "dropped": 10, "files": 0,
                                "last_error": "ConnectionError: S3 is down"}  # fmt: skip

    store.down = False
    writer.add(entry(5, version=2))
    writer.flush()
    assert writer.summary() == {"logged": 25, "pending": 0, "dropped": 10, "files": 2,
                                "last_error": None}  # fmt: skip
    keys = sorted(store.objects)
    assert keys[0].startswith("p/prediction-log/dt=2026-12-07/v=1/source=kafka/slot0-1-")
    assert keys[1].startswith("p/prediction-log/dt=2026-12-07/v=2/source=kafka/slot0-1-")
    table = pq.read_table(io.BytesIO(store.objects[keys[0]]))
    assert table.num_rows == 20 and table.column("score").to_pylist() == [0.25] * 20
    assert table.column_names == ["id", "source", "model_version", "score", "latency_ms", "at",
                                  "amount"]  # fmt: skip
