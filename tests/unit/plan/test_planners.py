"""The neutral plan: which DAGs a spec yields, with no Airflow involved."""

from __future__ import annotations

from loopline.plan import ProjectPaths, TaskKind, plan_pipeline
from loopline.plan.tasks import MapOver, XCom
from loopline.spec import load_spec
from support.paths import PIPELINES

PATHS = ProjectPaths.beside(PIPELINES)


def test_demo_spec_plans_a_feed_dag_with_validated_params() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml")
    [feed, *_] = plan_pipeline(spec, PATHS)
    assert feed.dag_id == "card_fraud.demo_feed"
    assert feed.schedule == "@hourly"
    assert {"loopline", "pipeline:card_fraud", "stage:demo_feed"} <= set(feed.tags)
    [land] = feed.tasks
    assert land.kind is TaskKind.LAND_DEMO_BATCH
    assert land.outlets[0].uri == "s3://loopline/card_fraud/landing"
    params = {p.name: p for p in feed.params}
    assert params["rows"].default == 5000 and params["rows"].schema["minimum"] == 1
    assert params["file_format"].schema["enum"] == ["parquet", "csv", "jsonl"]


def test_validation_plan_waits_lists_fans_out_and_judges() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml")
    [_, gate, *_] = plan_pipeline(spec, PATHS)
    assert gate.dag_id == "card_fraud.validate"
    assert gate.schedule == "*/15 * * * *"
    assert [a.name for a in gate.schedule_assets] == ["card_fraud.landing"]
    tasks = {task.task_id: task for task in gate.tasks}
    assert tasks["validate"].args.expansions() == {"keys": MapOver("list_landed")}
    assert tasks["validate"].args.suite_path.endswith("expectations/card_fraud.json")
    assert "wait_for_landing" not in tasks  # by default a run with nothing landed ends at once
    waiting = spec.validation.model_copy(update={"wait_minutes": 5, "poll_seconds": 7})
    [_, gate, *_] = plan_pipeline(spec.model_copy(update={"validation": waiting}), PATHS)
    wait = gate.task("wait_for_landing")
    assert (wait.args.timeout_minutes, wait.args.poll_seconds) == (5, 7)
    assert gate.task("list_landed").upstream == ("wait_for_landing",)
    assert tasks["verdict"].trigger_rule == "all_done"
    assert tasks["publish_validated"].outlets[0].uri == "s3://loopline/card_fraud/validated"


def test_a_spec_without_demo_section_plans_no_feed() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml").model_copy(update={"demo": None})
    stages = [plan.stage for plan in plan_pipeline(spec, PATHS)]
    assert stages == [
        "validate",
        "train",
        "rollback",
        "batch_score",
        "drift_audit",
        "stream_deploy",
        "stream_monitor",
        "replay",
    ]


def test_training_plan_trains_in_the_gpu_pool_and_asks_approval_when_the_spec_says() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml")
    [train] = [plan for plan in plan_pipeline(spec, PATHS) if plan.stage == "train"]
    assert [t.task_id for t in train.tasks] == ["snapshot", "train", "judge", "promote"]
    assert {t.task_id: t.pool for t in train.tasks}["train"] == "gpu"
    assert [o.name for o in train.tasks[-1].outlets] == ["card_fraud.champion"]
    assert {p.name for p in train.params} == {"epochs", "window_days", "reason", "window_end"}

    gated = spec.model_copy(
        update={"promotion": spec.promotion.model_copy(update={"require_approval": True})}
    )
    [train] = [plan for plan in plan_pipeline(gated, PATHS) if plan.stage == "train"]
    approve = next(t for t in train.tasks if t.task_id == "approve")
    assert approve.kind is TaskKind.APPROVE_PROMOTION and approve.upstream == ("judge",)
    assert train.tasks[-1].upstream == ("approve",)


def test_the_drift_audit_runs_on_any_new_data_and_retrains_through_the_train_dag() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml")
    [audit] = [plan for plan in plan_pipeline(spec, PATHS) if plan.stage == "drift_audit"]
    assert audit.dag_id == "card_fraud.drift_audit" and audit.schedule == "@daily"
    assert [a.name for a in audit.schedule_assets] == [
        "card_fraud.validated",
        "card_fraud.predictions",
    ]
    retrain = audit.task("retrain")
    assert retrain.upstream == ("audit",)
    assert retrain.args.operator_kwargs() == {
        "train_dag_id": "card_fraud.train",
        "decision": XCom("audit"),
    }
    # The report is rendered beside the retrain, after the decision: retraining never waits.
    report = audit.task("report")
    assert report.kind is TaskKind.DRIFT_REPORT and report.upstream == ("audit",)
    assert set(report.args.operator_kwargs()) == {"spec_path", "spec_sha256"}
    assert [p.name for p in audit.params] == ["window_end"]


def test_streaming_dags_deploy_on_each_champion_and_monitor_every_minute() -> None:
    spec = load_spec(PIPELINES / "card_fraud.yaml")
    plans = {plan.stage: plan for plan in plan_pipeline(spec, PATHS)}
    deploy, monitor = plans["stream_deploy"], plans["stream_monitor"]
    assert deploy.schedule is None
    assert [a.name for a in deploy.schedule_assets] == ["card_fraud.champion"]
    assert [p.name for p in deploy.params] == ["action", "model_version", "replicas"]
    assert monitor.schedule == "* * * * *" and [t.task_id for t in monitor.tasks] == ["monitor"]
    without = spec.model_copy(update={"streaming": None})
    assert not {"stream_deploy", "stream_monitor"} & {
        p.stage for p in plan_pipeline(without, PATHS)
    }
