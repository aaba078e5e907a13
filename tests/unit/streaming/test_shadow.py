"""A replica's shadow thread: follows the shadow file, scores the ids in its share with the
challenger and the champion on the same rows, logs both, counts what fails or is dropped,
and a challenger that does not load leaves the champion serving (tests/integration/streaming
runs it in a real replica)."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
from loopline.spec.sections import Features, ModelSpec
from loopline.streaming.shadow import ShadowScorer, in_share, shadow_path

MODEL = ModelSpec(features=Features(numeric=["amount"], categorical=[]), label="y")


class Log:
    def __init__(self) -> None:
        self.entries: list = []

    def add(self, entry) -> None:
        self.entries.append(entry)


def until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def test_the_share_is_the_same_events_on_every_replica() -> None:
    ids = [f"e{i}" for i in range(10_000)]
    chosen = in_share(ids, 0.2)
    assert 1800 < len(chosen) < 2200 and chosen == in_share(ids, 0.2)
    assert set(in_share(ids, 0.1)) <= set(chosen) and len(in_share(ids, 1.0)) == 10_000


def test_shadow_scores_are_logged_beside_the_champions_and_failures_counted(tmp_path) -> None:
    path = shadow_path(tmp_path, "fraud")
    path.parent.mkdir(parents=True)
    log = Log()

    def load(version: int):
        if version == 9:
            raise RuntimeError("corrupt model")
        return lambda table: np.full(table.num_rows, 0.25 if version == 2 else np.nan)

    def champion(table):
        return np.full(table.num_rows, 0.5)

    shadow = ShadowScorer(path, log, load, champion=lambda: (champion, 1), follow_seconds=0.02)
    shadow.start()
    try:
        table = pa.table({"amount": pa.array([1.0, 2.0, 3.0], pa.float32())})
        shadow.offer("rest", ["a", "b", "c"], lambda: table)  # no shadow yet: ignored
        path.write_text(json.dumps({"version": 9}))
        until(lambda: shadow.summary()["load_failed"] == 9)
        path.write_text(json.dumps({"version": 2, "share": 1.0}))
        until(lambda: shadow.summary()["version"] == 2)
        shadow.offer("rest", ["a", "b", "c"], lambda: table)
        until(lambda: shadow.summary()["scored"] == 3)
        path.write_text(json.dumps({"version": 3}))  # scores NaN: errors
        until(lambda: shadow.summary()["version"] == 3)
        shadow.offer("kafka", ["d"], lambda: table.slice(0, 1))
        until(lambda: shadow.summary()["errors"] == 1)
    finally:
        shadow.close()
    sources = [(e.source, e.version, list(e.ids)) for e in log.entries]
    assert sources == [
        ("shadow-champion", 1, ["a", "b", "c"]), ("shadow", 2, ["a", "b", "c"]),
        ("shadow-champion", 1, ["d"]), ("shadow", 3, ["d"]),
    ]  # fmt: skip
    assert log.entries[1].scores.tolist() == [0.25] * 3
    assert np.isnan(log.entries[3].scores).all()
