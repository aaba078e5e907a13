"""The audit decides and records without Evidently: the record is written and the retrain
decided before, and without, any report; the record names where the report will land and the
samples the report task reads. Under the unit tier's guard, importing Evidently here fails the
test, so these runs prove the decision's path never does. A small reference (1,000 rows or
fewer) takes Evidently's p-value tests, run here with scipy."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from loopline.data.profile_store import ProfileStore
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import DriftKnobs, generate
from loopline.drift.audit import REPORT_PENDING, run_audit
from loopline.drift.report import REPORTS_PREFIX, read_sample
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.spec import load_spec

SPEC = load_spec(Path(__file__).parents[3] / "include" / "pipelines" / "card_fraud.yaml")
# Against the validated days before the window: no champion, registry or model needed.
WINDOWED = SPEC.model_copy(update={"drift": SPEC.drift.model_copy(update={"reference": "window"})})
DAY = datetime(2026, 11, 20, tzinfo=UTC)


class MemoryStore:
    """The ObjectStore calls an audit makes, in a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, bucket: str, key: str, data: bytes, content_type: str, encoding: str = ""):
        self.objects[bucket, key] = data

    def get(self, bucket: str, key: str) -> bytes:
        return self.objects[bucket, key]

    def get_if_exists(self, bucket: str, key: str) -> bytes | None:
        return self.objects.get((bucket, key))

    def head(self, bucket: str, key: str) -> dict[str, int] | None:
        body = self.objects.get((bucket, key))
        return None if body is None else {"ContentLength": len(body)}

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))


def land(store: MemoryStore, day: datetime, rows: int, knobs: DriftKnobs, name: str) -> str:
    """A validated batch and its profile, as the gate leaves them."""
    key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/{name}.parquet"
    table = generate(rows, seed=len(name) + rows, drift=knobs, start=day, batch_id=name)
    profiles = ProfileStore(store, SPEC.data)  # type: ignore[arg-type]
    profiles.write(key, profiles.profile(table, key))
    store.put(SPEC.data.bucket, key, b"rows: the profile stands in", "x")
    return key


def no_scores(version: int, table: pa.Table) -> np.ndarray:
    raise AssertionError("a window reference has no champion to score with")


def audit(store: MemoryStore, run_id: str = "audit-1"):
    run = RunContext(SPEC.name, run_id, dag_id="card_fraud.drift_audit", task_id="audit")
    window = RunWindow(DAY + timedelta(days=1), WINDOWED.drift.window_days)
    return run_audit(store, None, WINDOWED, window, run, scorer=no_scores)  # type: ignore[arg-type]


def test_the_decision_is_recorded_and_retrains_before_any_report() -> None:
    store = MemoryStore()
    reference = land(store, DAY - timedelta(days=3), 4000, DriftKnobs(), "before")
    current = land(store, DAY, 4000, DriftKnobs(mean_shift=1.0, drifted_features=8), "now")

    outcome = audit(store)

    assert outcome.decision.retrain and outcome.verdict.drifted_features[:3] == ["v1", "v2", "v3"]
    records = RecordStore(store, SPEC.data.bucket)  # type: ignore[arg-type]
    record = records.read(SPEC.name, RecordStage.DRIFT, "audit-1")
    assert record.verdict == "retrain" and record.numbers["retrain"] == 1.0
    report = f"s3://loopline/{REPORTS_PREFIX}card_fraud/audit-1/drift.html"
    assert record.payload["report"] == outcome.report_uri == report
    assert record.payload["report_status"] == REPORT_PENDING
    assert report in outcome.train_conf()["reason"]  # where the report task will write it
    # Nothing rendered: no report object, and Evidently never imported.
    assert not [key for _, key in store.objects if key.startswith(REPORTS_PREFIX)]
    assert "evidently" not in sys.modules
    # The samples the report task will draw: the ones the audit merged, all stored.
    samples = record.payload["samples"]
    assert samples == {
        "reference": [f"profiles/{reference}.sample.parquet"],
        "current": [f"profiles/{current}.sample.parquet"],
    }
    assert all(("loopline", key) in store.objects for keys in samples.values() for key in keys)
    assert {"reference", "profiles", "scores", "decide", "record"} <= set(outcome.seconds)


def test_the_report_reads_the_very_sample_the_audit_merged() -> None:
    """The window's sample, merged again from the batches' samples the record names (the
    report task's read), is the audit's, row for row."""
    store = MemoryStore()
    land(store, DAY - timedelta(days=3), 4000, DriftKnobs(), "before")
    keys = [land(store, DAY, rows, DriftKnobs(), f"now-{rows}") for rows in (3000, 6000, 9000)]
    record = audit(store).record

    drawn = read_sample(store, SPEC.data.bucket, record.payload["samples"]["current"])  # type: ignore[arg-type]

    merged = ProfileStore(store, SPEC.data).merged(keys).sample  # type: ignore[arg-type]
    assert drawn.num_rows == 5000 and drawn.equals(merged)


def test_a_small_reference_gets_evidentlys_p_value_tests_without_evidently() -> None:
    store = MemoryStore()
    land(store, DAY - timedelta(days=3), 800, DriftKnobs(), "before")
    land(store, DAY, 3000, DriftKnobs(mean_shift=1.0, drifted_features=4), "now")

    verdict = audit(store).verdict

    methods = {d.column: d.method for d in [*verdict.features, verdict.label]}
    assert methods["v1"] == "K-S p_value" and methods["amount"] == "K-S p_value"
    assert methods["merchant_category"] == "chi-square p_value"
    assert methods["is_fraud"] == "Z-test p_value"  # an int64 of two values
    assert all(d.score_kind == "p_value" and d.threshold == 0.05 for d in verdict.features)
    assert verdict.drifted_features[:4] == ["v1", "v2", "v3", "v4"]
    assert "evidently" not in sys.modules
