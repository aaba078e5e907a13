"""Records as metrics: what each family says, from records made as the stages make them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from loopline.drift.scores import ColumnDrift
from loopline.records import RecordStage, RunContext
from loopline.telemetry.record_metrics import RECORD_METRICS, facts_of, record_families

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def fact(stage, verdict, *, subject="run", minutes=0, numbers=None, payload=None, task="t"):
    run = RunContext("card_fraud", f"run-{minutes}", f"card_fraud.{task}", task, 1, None, T0)
    made = run.record(stage, verdict, subject=subject, numbers=numbers or {}, payload=payload or {})
    return facts_of(made.model_copy(update={"ended_at": T0 + timedelta(minutes=minutes)}))


def samples(families) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def value(found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({"pipeline": "card_fraud", **labels}.items())))]


def drift_payload(scores: dict[str, float]) -> dict:
    features = [
        ColumnDrift(column, "Wasserstein distance (normed)", score, "distance", 0.1, score >= 0.1)
        for column, score in scores.items()
    ]
    return {"verdict": {"features": [f.to_dict() for f in features], "label": None}}


def test_validation_counts_files_by_verdict_and_rows_by_outcome() -> None:
    facts = [
        fact(RecordStage.VALIDATION, "validated", subject="a.parquet",
             numbers={"rows": 100, "accepted_rows": 100, "rejected_rows": 0}),
        fact(RecordStage.VALIDATION, "split", subject="b.parquet",
             numbers={"rows": 10, "accepted_rows": 7, "rejected_rows": 3}),
        fact(RecordStage.VALIDATION, "quarantined", subject="c.csv",
             numbers={"rows": 5, "accepted_rows": 0, "rejected_rows": 5}),
        fact(RecordStage.VALIDATION, "failed"),
    ]  # fmt: skip
    found = samples(record_families({"card_fraud": facts}, {}))
    assert value(found, "loopline_validation_files_total", verdict="validated") == 1
    assert value(found, "loopline_validation_files_total", verdict="quarantined") == 1
    assert value(found, "loopline_validation_rows_total", outcome="accepted") == 107
    assert value(found, "loopline_validation_rows_total", outcome="rejected") == 8
    assert value(found, "loopline_validation_runs_total", verdict="failed") == 1
    assert value(found, "loopline_records_total", stage="validation") == 4


def test_drift_scores_come_from_the_latest_audit_that_scored() -> None:
    facts = [
        fact(RecordStage.DRIFT, "within_limits", minutes=1, payload=drift_payload({"v1": 0.02}),
             numbers={"drifted_share": 0.0}),
        fact(RecordStage.DRIFT, "retrain", minutes=5, payload=drift_payload({"v1": 0.4}),
             numbers={"drifted_share": 1.0}),
        fact(RecordStage.DRIFT, "skipped", minutes=9),  # the newest: no scores
        fact(RecordStage.DRIFT, "rendered", subject="report", minutes=10),
    ]  # fmt: skip
    found = samples(record_families({"card_fraud": facts}, {}))
    labels = {"column": "v1", "kind": "feature", "method": "Wasserstein distance (normed)"}
    assert value(found, "loopline_drift_score", **labels) == 0.4
    assert value(found, "loopline_drift_drifted", **labels) == 1.0
    assert value(found, "loopline_drift_threshold", **labels) == 0.1
    assert value(found, "loopline_drift_drifted_share") == 1.0
    assert value(found, "loopline_drift_last_verdict", verdict="skipped") == 1
    assert value(found, "loopline_drift_audits_total", verdict="retrain") == 1
    audits = [k for k in found if k[0] == "loopline_drift_audits_total"]
    assert len(audits) == 3  # the report's record is not an audit


def test_promotions_champion_streaming_and_task_cost() -> None:
    facts = [
        fact(RecordStage.JUDGEMENT, "promote", subject="v1"),
        fact(RecordStage.JUDGEMENT, "refuse", subject="v2"),
        fact(RecordStage.JUDGEMENT, "refuse", subject="v3"),
        fact(RecordStage.PROMOTION, "champion", numbers={"version": 1}),
        fact(RecordStage.STREAMING, "no_change", subject="scaling", minutes=1,
             numbers={"total_lag": 900, "p99_stable_ms": 80, "current": 1, "desired": 1}),
        fact(RecordStage.STREAMING, "scale_out", subject="scaling", minutes=2,
             numbers={"total_lag": 4000, "current": 1, "desired": 3}),
        fact(RecordStage.COST, "success", subject="train.try1", task="train",
             numbers={"wall_seconds": 30, "cpu_seconds": 50}),
        fact(RecordStage.COST, "failed", subject="train.try2", task="train",
             numbers={"wall_seconds": 5, "cpu_seconds": 1}),
        fact(RecordStage.FAILURE, "failed", subject="train.try2", task="train"),
    ]  # fmt: skip
    found = samples(record_families({"card_fraud": facts}, {"card_fraud": 7}))
    assert value(found, "loopline_promotion_decisions_total", verdict="refuse") == 2
    assert value(found, "loopline_alias_moves_total", verdict="champion") == 1
    assert value(found, "loopline_champion_version") == 7
    assert value(found, "loopline_streaming_lag") == 4000  # the latest decision's
    assert value(found, "loopline_streaming_replicas", kind="desired") == 3
    assert "loopline_streaming_p99_latency_seconds" not in {k[0] for k in found}
    assert value(found, "loopline_streaming_decisions_total", subject="scaling",
                 verdict="scale_out") == 1  # fmt: skip
    task = {"dag_id": "card_fraud.train", "task_id": "train"}
    assert value(found, "loopline_task_cpu_seconds_total", **task) == 51
    assert value(found, "loopline_task_tries_total", **task, outcome="failed") == 1
    assert value(found, "loopline_task_failures_total", **task, verdict="failed") == 1


def test_every_family_is_exported_even_without_samples() -> None:
    families = record_families({}, {})
    names = [f.name + ("_total" if f.type == "counter" else "") for f in families]
    assert names == list(RECORD_METRICS)


def test_a_drift_record_without_its_scores_is_refused_naming_the_field() -> None:
    with pytest.raises(KeyError, match="features"):
        fact(RecordStage.DRIFT, "retrain", payload={"verdict": {"label": None}})
