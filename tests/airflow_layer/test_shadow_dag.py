"""``<pipeline>.shadow`` through Airflow (``dag.test()``), registry and prediction log on the
real S3 server: a challenger that passed the offline gate is put in shadow, judged on its
logged shadow pairs, promoted on a pass (a champion asset event) with its shadow stopped, left
in shadow while pending, and a run with no challenger skips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.promotion.judge import apply_judgement
from loopline.promotion.shadow import latest_shadow_verdict
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHALLENGER, CHAMPION, ModelRegistry
from loopline.spec.sections import ShadowSpec
from loopline.streaming.shadow import shadow_path, wanted_shadow
from support.airflow_runs import asset_events, use_spec_variant
from support.judged_versions import SPEC, crown, empty_registry, judge_as, register
from support.paths import DAGS_FOLDER
from support.shadow_traffic import shadow_log, spread

RULES = {"min_pairs": 200, "share": 0.25}
SHADOWED = SPEC.model_copy(
    update={"promotion": SPEC.promotion.model_copy(update={"shadow": ShadowSpec(**RULES)})}
)
CHAMPION_URI = "s3://loopline/models/card_fraud/aliases/champion"


@pytest.fixture
def world(airflow_db, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The DAG files on the demo spec with promotion.shadow; S3, a Kafka connection (never
    reached: a shadow is a file the local replicas follow) and the state folder; v1 champion."""
    use_spec_variant(tmp_path, monkeypatch, lambda spec: spec["promotion"].update(shadow=RULES))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:9"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka))
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path / "state"))
    registry = empty_registry(s3)
    v1 = register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="r1", spec=SHADOWED)
    crown(registry, v1)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.shadow"]
    return registry, dag, tmp_path


def add_challenger(registry: ModelRegistry, tmp_path: Path) -> int:
    """v2, judged passing by the train DAG's rules: it waits as challenger."""
    v2 = register(registry, tmp_path)
    judgement = judge_as(registry, v2, auc=0.95, run_id="r2", spec=SHADOWED)
    run = RunContext(SHADOWED.name, "r2", dag_id="card_fraud.train", task_id="promote")
    apply_judgement(registry, SHADOWED, judgement, run)
    assert registry.alias("card_fraud", CHALLENGER) == v2
    return v2


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def shadow_file(tmp_path: Path) -> Path:
    return shadow_path(tmp_path / "state" / "streaming", "card_fraud")


def test_a_passing_shadow_verdict_promotes_the_challenger_and_ends_the_shadow(world) -> None:
    registry, dag, tmp_path = world
    v2 = add_challenger(registry, tmp_path)
    shadow_log(registry.store, SHADOWED, spread(300) + 0.001)

    run = dag.test(run_conf={"days": 2}, logical_date=None)  # REST, "logical_date": null

    assert run.state == "success", states(run)
    assert states(run) == dict.fromkeys(
        ("start_shadow", "judge_shadow", "promote_challenger", "stop_shadow"), "success"
    )
    verdict = latest_shadow_verdict(registry.store, SHADOWED, v2)
    assert verdict is not None and verdict.verdict == "pass" and verdict.run_id == run.run_id
    assert verdict.numbers["pairs"] == 300 and verdict.payload["champion"] == 1
    assert registry.alias("card_fraud", CHAMPION) == v2
    move = registry.history("card_fraud", CHAMPION)[-1]
    assert move.by == f"airflow:card_fraud.shadow/{run.run_id}"
    assert "passed its shadow verdict against v1" in move.reason
    [event] = asset_events(CHAMPION_URI, run.run_id)  # the consumers roll on it
    assert event.extra == {"version": v2, "previous": 1, "action": "promote"}
    assert wanted_shadow(shadow_file(tmp_path)) is None
    assert json.loads(shadow_file(tmp_path).read_text()) == {"version": None}
    records = RecordStore(registry.store, "loopline").records("card_fraud", run_id=run.run_id)
    decisions = [(r.stage, r.subject, r.verdict, r.task_id) for r in records if r.stage != "cost"]
    assert sorted(decisions) == [
        (RecordStage.PROMOTION, "v2", "champion", "promote_challenger"),
        (RecordStage.SHADOW, "v2", "pass", "judge_shadow"),
        (RecordStage.STREAMING, "shadow", "done", "start_shadow"),
        (RecordStage.STREAMING, "shadow-stop", "done", "stop_shadow"),
    ]

    # The new champion has no challenger beside it: the next run has nothing to judge.
    again = dag.test(logical_date=None)
    assert again.state == "success"
    assert set(states(again).values()) == {"skipped"}


def test_too_few_pairs_is_pending_and_leaves_the_challenger_in_shadow(world) -> None:
    registry, dag, tmp_path = world
    v2 = add_challenger(registry, tmp_path)
    shadow_log(registry.store, SHADOWED, spread(50))

    run = dag.test(run_conf={"days": 7})  # the trigger form

    assert run.state == "success", states(run)
    assert states(run) == {
        "start_shadow": "success",
        "judge_shadow": "success",
        "promote_challenger": "skipped",
        "stop_shadow": "skipped",
    }
    verdict = latest_shadow_verdict(registry.store, SHADOWED, v2)
    assert verdict is not None and verdict.verdict == "pending" and verdict.numbers["pairs"] == 50
    assert registry.alias("card_fraud", CHAMPION) == 1
    wanted = wanted_shadow(shadow_file(tmp_path))
    assert wanted is not None and (wanted.version, wanted.share) == (v2, 0.25)

    # An hour later, still pending: the shadow is not started again ("no_change", recorded).
    again = dag.test(logical_date=datetime.now(UTC) - timedelta(minutes=5))
    assert states(again)["start_shadow"] == "success"
    streaming = RecordStore(registry.store, "loopline").records("card_fraud", RecordStage.STREAMING)
    assert [(r.run_id, r.verdict) for r in streaming] == [
        (run.run_id, "done"),
        (again.run_id, "no_change"),
    ]


def test_a_failing_verdict_ends_the_shadow_and_keeps_the_champion(world) -> None:
    registry, dag, tmp_path = world
    v2 = add_challenger(registry, tmp_path)
    shadow_log(registry.store, SHADOWED, spread(300)[::-1].copy())  # every decision flipped

    run = dag.test(logical_date=None)

    assert run.state == "success", states(run)
    assert states(run)["promote_challenger"] == "skipped"
    assert states(run)["stop_shadow"] == "success"
    assert latest_shadow_verdict(registry.store, SHADOWED, v2).verdict == "fail"
    assert registry.alias("card_fraud", CHAMPION) == 1
    assert wanted_shadow(shadow_file(tmp_path)) is None
    # A final verdict ends its shadow: the next run does not put it back.
    again = dag.test(logical_date=None)
    assert set(states(again).values()) == {"skipped"}
    assert wanted_shadow(shadow_file(tmp_path)) is None


def test_no_challenger_awaiting_skips_every_task(world) -> None:
    registry, dag, tmp_path = world

    run = dag.test(logical_date=None)

    assert run.state == "success"
    assert states(run) == dict.fromkeys(
        ("start_shadow", "judge_shadow", "promote_challenger", "stop_shadow"), "skipped"
    )
    assert not shadow_file(tmp_path).exists()
    assert registry.alias("card_fraud", CHAMPION) == 1


def test_the_shadow_dag_has_the_metadata_every_dag_has(world) -> None:
    """test_dag_integrity's checks, for a DAG the demo spec does not plan."""
    from loopline.airflow.callbacks import DebugBundleOnFailure, RecordTaskCost

    _, dag, _ = world
    assert "loopline" in dag.tags and "stage:shadow" in dag.tags and dag.doc_md
    for task in dag.tasks:
        assert task.owner == "ml-platform" and task.retries >= 1 and task.doc_md, task.task_id
        callbacks = [type(c) for c in task.on_failure_callback or ()]
        assert {RecordTaskCost, DebugBundleOnFailure} <= set(callbacks), task.task_id
    days = dag.params.get_param("days").schema
    assert (days["type"], days["minimum"], days["maximum"]) == ("integer", 1, 31)
    assert days["section"] == "Shadow verdict"
