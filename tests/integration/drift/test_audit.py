"""Drift audits on a real S3 server, then their real Evidently reports: each of the demo
generator's knobs is detected and retrains, an undrifted window does not, the cooldown holds,
and a missing reference or an empty window says so; the report, rendered after the decision
from the samples its record names, lands where the record said, and with a small reference
the audit's own p-value tests decide as Evidently's report does on the same rows. The
champion here is a registered version whose scorer is a plain function (the audit through a
real Keras champion runs in the Airflow-layer and stack tests)."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopline.data.profile_store import ProfileStore
from loopline.data.window import RunWindow
from loopline.demo.card_transactions import DriftKnobs, generate
from loopline.drift.audit import EmptyWindow, run_audit
from loopline.drift.reference import NoReference
from loopline.drift.report import NothingToReport, report_audit
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHAMPION, ModelRegistry
from loopline.registry.layout import snapshot_table_key
from loopline.storage.formats import encode
from support.validated_data import DEMO, demo_bucket

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def fraud_scores(version: int, table: pa.Table) -> np.ndarray:
    """A champion that knows its data: the label, blurred (AUC near 1 until labels move)."""
    labels = table.column(DEMO.model.label).to_numpy().astype(float)
    return 0.8 * labels + 0.1


@pytest.fixture
def champion(s3, tmp_path: Path):
    """Champion v1, trained (as its training run's tables say) on 20,000 undrifted rows."""
    return make_champion(s3, tmp_path, holdout_rows=5_000)


def make_champion(s3, tmp_path: Path, holdout_rows: int, train_rows: int = 20_000):
    store = demo_bucket(s3)
    registry = ModelRegistry(store, DEMO.data.bucket)
    train = generate(train_rows, seed=1, start=TODAY - timedelta(days=10), batch_id="ref")
    holdout = generate(holdout_rows, seed=2, start=TODAY - timedelta(days=10), batch_id="hold")
    for name, table in (("train", train), ("holdout", holdout)):
        key = snapshot_table_key(DEMO.name, "train-run-1", name)
        store.put(DEMO.data.bucket, key, encode(table, "parquet"), "x")
    (tmp_path / "model.keras").write_bytes(b"not a model: the scorer stands in")
    version = registry.register(
        DEMO.name,
        tmp_path,
        metrics={"auc": 0.99},
        input_schema=[],
        lineage={"run_id": "train-run-1"},
    ).version
    registry.move_alias(
        DEMO.name, CHAMPION, version, expected=None, action="set", reason="t", by="t"
    )
    return store, registry


CALM = DriftKnobs()


def land(store, knobs: DriftKnobs = CALM, rows: int = 10_000, name: str = "b") -> str:
    """A batch validated today, profiled the way the gate profiles it."""
    key = f"{DEMO.data.validated_prefix}dt={TODAY:%Y-%m-%d}/{name}.parquet"
    table = generate(rows, seed=zlib.crc32(name.encode()), drift=knobs, start=TODAY, batch_id=name)
    profiles = ProfileStore(store, DEMO.data)
    profiles.write(key, profiles.profile(table, key))
    store.put_new(DEMO.data.bucket, key, encode(table, "parquet"))
    return key


def audit(store, registry, run_id: str = "audit-1"):
    run = RunContext(DEMO.name, run_id, dag_id=f"{DEMO.name}.drift_audit")
    return run_audit(
        store, registry, DEMO, RunWindow(NOW, DEMO.drift.window_days), run, scorer=fraud_scores
    )


def report(store, run_id: str = "audit-1"):
    """What the DAG's report task does after the audit of the same run."""
    run = RunContext(DEMO.name, run_id, dag_id=f"{DEMO.name}.drift_audit", task_id="report")
    return report_audit(store, DEMO, run)


def stored_report(store, outcome) -> tuple[bytes, dict]:
    """The report's HTML and its JSON, both stored gzip-encoded."""
    key = outcome.report_uri.removeprefix(f"s3://{DEMO.data.bucket}/")
    head = store.head(DEMO.data.bucket, key)
    assert head["ContentEncoding"] == "gzip" and head["ContentType"] == "text/html"
    html = gzip.decompress(store.get(DEMO.data.bucket, key))
    body = json.loads(gzip.decompress(store.get(DEMO.data.bucket, key.replace(".html", ".json"))))
    return html, body


def test_an_undrifted_window_is_recorded_and_retrains_nothing(champion) -> None:
    store, registry = champion
    land(store, name="calm-1")
    land(store, name="calm-2")

    outcome = audit(store, registry)

    assert outcome.decision.verdict == "within_limits" and not outcome.decision.retrain
    assert outcome.verdict.drifted_features == [] and not outcome.verdict.label.drifted
    assert outcome.verdict.rows == 20_000 and outcome.verdict.batches == 2
    assert outcome.verdict.quality.current > 0.95
    assert "champion v1's training rows (20,000" in outcome.verdict.reference
    record = RecordStore(store, DEMO.data.bucket).read(DEMO.name, RecordStage.DRIFT, "audit-1")
    assert record.verdict == "within_limits" and record.numbers["retrain"] == 0.0
    assert {d["column"] for d in record.payload["verdict"]["features"]} == set(
        DEMO.model.features.all
    )
    # Decided and recorded; the report is the report task's, not rendered yet.
    assert record.payload["report"] == outcome.report_uri
    key = outcome.report_uri.removeprefix(f"s3://{DEMO.data.bucket}/")
    assert store.head(DEMO.data.bucket, key) is None


def test_the_report_task_writes_html_and_json_from_the_samples_the_audit_used(champion) -> None:
    store, registry = champion
    land(store, name="calm-1")
    land(store, name="calm-2")
    outcome = audit(store, registry)

    rendered = report(store)

    assert rendered.uri == outcome.report_uri
    html, body = stored_report(store, outcome)
    assert b"<html" in html[:2000].lower() and len(html) == rendered.html_bytes
    assert body["verdict"] == outcome.record.payload["verdict"]
    assert set(body["evidently_on_samples"]) >= set(DEMO.model.features.all)
    assert max(body["sample_gap"].values()) < 0.05  # 5,000-row samples vs every row
    # The rows drawn: the champion's 5,000-row reference sample, and the window's, merged
    # from its two batches' samples as the audit merged them.
    record = rendered.record
    assert record.subject == "report" and record.verdict == "rendered"
    assert record.numbers["reference_sample_rows"] == 5000
    assert record.numbers["current_sample_rows"] == 5000
    assert [o.uri for o in record.outputs] == [
        outcome.report_uri,
        outcome.report_uri.replace(".html", ".json"),
    ]
    assert len(record.inputs) == 3  # the reference's sample, and one per batch
    # The audit's own record is still the decision: the history reads only that one.
    records = RecordStore(store, DEMO.data.bucket)
    assert records.read(DEMO.name, RecordStage.DRIFT, "audit-1").verdict == "within_limits"


def test_a_render_that_fails_fails_the_report_and_leaves_the_decision(champion) -> None:
    store, registry = champion
    land(store, DriftKnobs(mean_shift=1.0, drifted_features=8), name="drifted")
    outcome = audit(store, registry)
    [sample, *_] = outcome.record.payload["samples"]["current"]
    store.delete_keys(DEMO.data.bucket, [sample])  # e.g. a lifecycle rule went too far

    with pytest.raises(FileNotFoundError, match="a sample the audit used is gone"):
        report(store)

    record = RecordStore(store, DEMO.data.bucket).read(DEMO.name, RecordStage.DRIFT, "audit-1")
    assert record.verdict == "retrain" and outcome.decision.retrain
    assert store.head(DEMO.data.bucket, outcome.report_uri.split("/", 3)[3]) is None


def test_a_small_reference_is_decided_as_evidentlys_report_decides_on_the_same_rows(
    s3, tmp_path
) -> None:
    """A champion trained on 900 rows: Evidently tests each column's rows with a p-value (K-S,
    chi-square, Z); the audit runs the same tests itself, and the report (Evidently on the
    same two samples) must find the same method, threshold, score and verdict per column."""
    store, registry = make_champion(s3, tmp_path, holdout_rows=500, train_rows=900)
    knobs = DriftKnobs(mean_shift=0.5, drifted_features=5, new_category_share=0.2)
    land(store, knobs, rows=20_000, name="drifted")
    outcome = audit(store, registry)
    report(store)

    _, body = stored_report(store, outcome)
    theirs = body["evidently_on_samples"]
    failed = {
        test["name"].removeprefix("Value Drift for column ")
        for test in body["evidently"]["tests"]
        if test["name"].startswith("Value Drift for column ") and test["status"] == "FAIL"
    }
    ours = [*outcome.verdict.features, outcome.verdict.label]
    assert {d.method for d in ours} == {"K-S p_value", "chi-square p_value", "Z-test p_value"}
    for drift in ours:
        found = theirs[drift.column]
        assert drift.method == found["method"], drift.column
        assert drift.threshold == found["threshold"], drift.column
        assert drift.score == pytest.approx(found["score"], rel=1e-9, abs=1e-12), drift.column
        assert drift.drifted == (drift.column in failed), drift.column
    assert {"v1", "v5", "merchant_category"} <= set(outcome.verdict.drifted_features)


@pytest.mark.parametrize(
    ("knobs", "crossed"),
    [
        (DriftKnobs(mean_shift=0.5, drifted_features=5), "5 of 32 features drifted"),
        (
            DriftKnobs(new_category_share=0.3),
            "key feature(s) drifted (drift.key_features): merchant_category",
        ),
        (DriftKnobs(label_shift=0.2), "label drift: is_fraud"),
    ],
    ids=["mean shift", "unseen categories", "label shift"],
)
def test_each_drift_knob_is_detected_and_retrains(champion, knobs, crossed) -> None:
    store, registry = champion
    land(store, knobs, name="drifted")

    outcome = audit(store, registry)

    assert outcome.decision.retrain and outcome.decision.verdict == "retrain"
    assert any(reason.startswith(crossed) for reason in outcome.decision.reasons), (
        outcome.decision.reasons
    )
    conf = outcome.train_conf()
    assert conf["reason"].startswith("drift audit audit-1: ")
    assert outcome.report_uri in conf["reason"]


def test_the_cooldown_holds_a_second_retrain_and_says_until_when(champion) -> None:
    store, registry = champion
    land(store, DriftKnobs(mean_shift=1.0, drifted_features=8), name="drifted")
    assert audit(store, registry, "audit-1").decision.retrain

    again = audit(store, registry, "audit-2")

    assert not again.decision.retrain and again.decision.verdict == "held"
    assert again.decision.reasons[0].startswith("cooldown: audit audit-1 retrained at ")
    assert again.decision.crossed  # still drifted: said, not acted on


def test_prediction_drift_from_committed_batch_scores_even_with_a_small_holdout(
    s3, tmp_path
) -> None:
    """A champion judged on 800 holdout rows: its scores are still a reference for the
    window's batch predictions (a distance, not a p-value), and the audit does not fail."""
    from loopline.data.predictions import SUCCESS

    store, registry = make_champion(s3, tmp_path, holdout_rows=800)
    land(store, name="calm")
    shifted = generate(3000, seed=5, start=TODAY, batch_id="p")
    scores = pa.table(
        {
            "transaction_id": shifted.column("transaction_id"),
            "score": pa.array(np.full(3000, 0.9), pa.float32()),  # the champion gone mad
            "model_version": pa.array([1] * 3000, pa.int32()),
        }
    )
    partition = f"{DEMO.batch_inference.output_prefix}dt={TODAY:%Y-%m-%d}/"
    store.put(DEMO.data.bucket, partition + "run-0.parquet", encode(scores, "parquet"), "x")
    manifest = {
        "run_id": "r",
        "model_version": 1,
        "rows": 3000,
        "files": [partition + "run-0.parquet"],
    }
    store.put(DEMO.data.bucket, partition + SUCCESS, json.dumps(manifest).encode(), "x")

    outcome = audit(store, registry)

    prediction = outcome.verdict.prediction
    # (this stand-in scores two values, so the test is on their frequencies: Jensen-Shannon)
    assert prediction.score_kind == "distance" and prediction.drifted
    assert any(r.startswith("prediction drift: score: ") for r in outcome.decision.reasons)


def test_prediction_drift_from_the_prediction_log_when_no_batch_scoring_ran(s3, tmp_path) -> None:
    """A pipeline scored only online and from Kafka: the replicas' prediction log (written by
    its real writer) is what the audit compares with the champion's holdout scores."""
    from loopline.data.prediction_log import log_prefix, logged_files
    from loopline.streaming.events import features_table, probe_event
    from loopline.streaming.prediction_log import Logged, PredictionLog

    store, registry = make_champion(s3, tmp_path, holdout_rows=5_000)
    land(store, name="calm")
    writer = PredictionLog(lambda: store, DEMO.data.bucket, log_prefix(DEMO), "slot0-1", DEMO.model)
    events = [probe_event(DEMO.model)] * 1500
    mad = np.full(1500, 0.9, np.float32)  # the champion gone mad, on every path
    for source in ("rest", "kafka"):
        ids = [f"{source}-{i}" for i in range(1500)]
        rows = lambda: features_table(events, DEMO.model)  # noqa: E731
        writer.add(Logged(source, ids, rows, mad, 1, [3.0] * 1500, NOW.timestamp()))
    writer.add(Logged("grpc", ["g"], lambda: features_table(events[:1], DEMO.model),
                      np.array([0.5], np.float32), 2, [1.0], NOW.timestamp()))  # fmt: skip
    writer.flush()
    assert writer.summary() | {"last_error": None} == {
        "logged": 3001, "pending": 0, "dropped": 0, "files": 3, "last_error": None
    }  # fmt: skip
    [kafka, _] = logged_files(store, DEMO.data.bucket, log_prefix(DEMO), [TODAY.date()], 1)
    table = pq.read_table(pa.BufferReader(store.get(DEMO.data.bucket, kafka.key)))
    assert table.column("source").unique().to_pylist() == ["kafka"] and table.num_rows == 1500
    assert {"id", "score", "model_version", "latency_ms", "at", "amount"} <= set(table.column_names)

    outcome = audit(store, registry)

    prediction = outcome.verdict.prediction
    assert prediction is not None and prediction.drifted
    assert any(r.startswith("prediction drift: score: ") for r in outcome.decision.reasons)
    assert any("2 prediction log file(s)" in note for note in outcome.verdict.notes)


def test_a_retried_audit_decides_as_its_first_try_did(champion) -> None:
    store, registry = champion
    land(store, DriftKnobs(mean_shift=1.0, drifted_features=8), name="drifted")
    assert audit(store, registry, "audit-1").decision.retrain

    assert audit(store, registry, "audit-1").decision.retrain  # not held by its own record


def test_no_champion_or_an_empty_window_says_so(s3) -> None:
    store = demo_bucket(s3)
    registry = ModelRegistry(store, DEMO.data.bucket)
    with pytest.raises(
        EmptyWindow, match=r"no validated batch of card_fraud dated .* nothing triggered"
    ):
        audit(store, registry)
    land(store, name="first")
    with pytest.raises(NoReference, match="card_fraud has no champion yet"):
        audit(store, registry)
    with pytest.raises(NothingToReport, match=r"compared nothing \(skipped: card_fraud has no"):
        report(store)


def test_drift_history_prints_each_audit_with_its_decision(champion, capsys) -> None:
    import argparse

    from loopline.commands.drift import print_drift_history

    store, registry = champion
    land(store, name="calm")
    audit(store, registry, "audit-1")
    land(store, DriftKnobs(mean_shift=1.0, drifted_features=8), name="drifted")
    audit(store, registry, "audit-2")

    print_drift_history(argparse.Namespace(feature=None), DEMO, store)
    lines = capsys.readouterr().out.splitlines()
    audits = [line for line in lines if line[:4].isdigit()]
    assert len(audits) == 2
    assert "within_limits" in audits[0] and " 0/32 0.00 .........." in audits[0]
    assert "retrain" in audits[1] and "drift_audit__audit-2: not judged yet" in audits[1]

    print_drift_history(argparse.Namespace(feature="v1"), DEMO, store)
    trend = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in trend[1:]] == ["no", "yes"]
    assert "Wasserstein distance (normed)" in trend[1]
