"""Lineage and log context through Airflow (``dag.test()``, real S3 server): the OpenLineage
provider's own listener, with the file transport the stack configures, writes START and
COMPLETE events naming each Loopline task's datasets; a task's log lines carry pipeline,
stage, run and model version."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.demo.card_transactions import generate
from loopline.registry import ModelRegistry
from loopline.stack.airflow_env import LINEAGE_NAMESPACE, lineage_file_transport
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from support.judged_versions import promote_in_turn
from support.paths import DAGS_FOLDER

BUCKET = "s3://loopline"
LANDING = "card_fraud/landing/dt=2026-11-23/"


@pytest.fixture
def lineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The provider's listener, as its plugin registers it where a transport is set, with the
    stack's file transport. The task runner's listener manager is built (plugins read) before
    the transport is set, so the plugin itself stays off for every other test."""
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    manager = get_listener_manager()
    events = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", lineage_file_transport(events))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", LINEAGE_NAMESPACE)
    # As the stack runs it; forking the test process (the default) hangs each emission here.
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    listener = OpenLineageListener()
    manager.add_listener(listener)
    yield events
    manager.pm.unregister(listener)


@pytest.fixture
def store(airflow_db, s3, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    return store


def events_of(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Each (job, event type)'s event, the last one where a job has several."""
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return {(e["job"]["name"], e["eventType"]): e for e in events}


def datasets(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event.get(side, [])]


def test_a_validation_run_reports_what_each_task_read_and_wrote(store, lineage_events) -> None:
    good, bad = generate(300, seed=1, batch_id="a"), generate(100, seed=3, batch_id="c")
    store.put_new("loopline", LANDING + "a.parquet", encode(good, "parquet"))
    store.put_new(
        "loopline", LANDING + "c.parquet", encode(bad.drop_columns(["channel"]), "parquet")
    )
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "failed"  # c.parquet is quarantined, which fails the run by spec
    events = events_of(lineage_events)
    jobs = {job for job, _ in events}
    assert jobs == {
        f"card_fraud.validate.{task}"
        for task in ("list_landed", "validate", "publish_validated", "verdict")
    }
    assert {e["job"]["namespace"] for e in events.values()} == {LINEAGE_NAMESPACE}
    assert ("card_fraud.validate.list_landed", "START") in events
    listed = events["card_fraud.validate.list_landed", "COMPLETE"]
    assert datasets(listed, "inputs") == [(BUCKET, "card_fraud/landing")]
    landed = [(BUCKET, LANDING + "a.parquet"), (BUCKET, LANDING + "c.parquet")]
    assert datasets(events["card_fraud.validate.validate", "START"], "inputs") == landed
    validated = events["card_fraud.validate.validate", "COMPLETE"]
    assert datasets(validated, "inputs") == landed
    assert datasets(validated, "outputs") == [
        (BUCKET, "card_fraud/validated/dt=2026-11-23/a.parquet"),
        (BUCKET, "card_fraud/quarantine/dt=2026-11-23/c.parquet"),
        (BUCKET, "card_fraud/quarantine/dt=2026-11-23/c.parquet.report.json"),
    ]
    published = events["card_fraud.validate.publish_validated", "COMPLETE"]
    assert datasets(published, "outputs") == [(BUCKET, "card_fraud/validated")]
    # The failed verdict reports too: what it judged.
    judged = events["card_fraud.validate.verdict", "FAIL"]
    assert datasets(judged, "inputs") == datasets(validated, "outputs")


def test_a_rollback_reports_the_versions_and_logs_them_on_every_line(
    store, lineage_events, tmp_path, capfd: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry(store, "loopline")
    promote_in_turn(registry, tmp_path, versions=2)  # placeholder versions, each champion
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.rollback"]

    run = dag.test(run_conf={"reason": "scores look wrong"})

    assert run.state == "success"
    rolled = events_of(lineage_events)["card_fraud.rollback.rollback", "COMPLETE"]
    assert datasets(rolled, "inputs") == [(BUCKET, "models/card_fraud/versions/000001")]
    assert datasets(rolled, "outputs") == [(BUCKET, "models/card_fraud/aliases/champion")]
    # The task's own line, as Airflow renders it: its keys beside the message.
    [line] = [
        line
        for line in capfd.readouterr().out.splitlines()
        if "card_fraud champion: 1 -> 2 (rollback)" in line
    ]
    keys = dict(re.findall(r"(\w+)=(\S+)", line))
    assert keys["pipeline"] == "card_fraud"
    assert keys["stage"] == "rollback"
    assert keys["run_id"] == run.run_id
    assert keys["model_version"] == "1"


# Tasks that read and write no data: branches, the approval form, the trigger of a train run.
NO_DATA = {
    "approve_promotion",
    "approve_shadow_promotion",
    "retrain_on_drift",
    "choose_consumer_action",
    "choose_replay",
}


def test_every_operator_that_touches_data_reports_its_datasets() -> None:
    from loopline.airflow.factory import OPERATORS
    from loopline.airflow.lineage import ReportsLineage

    reporting = {
        kind.value for kind, operator in OPERATORS.items() if issubclass(operator, ReportsLineage)
    }

    assert reporting == {kind.value for kind in OPERATORS} - NO_DATA


def test_every_task_binds_its_log_context_first_and_names_its_stage() -> None:
    from loopline.airflow.callbacks import BindLogContext, stage_of

    dags = DagBag(dag_folder=str(DAGS_FOLDER)).dags
    tasks = [task for dag in dags.values() for task in dag.tasks]
    assert tasks
    for task in tasks:
        assert isinstance(task.on_execute_callback[0], BindLogContext), task.task_id
    stages = {stage_of(task) for task in dags["card_fraud.train"].tasks}
    assert {"training_snapshot", "train_model", "judge_candidate", "promote"} <= stages


def test_a_lineage_that_fails_reports_nothing_and_raises_nothing(tmp_path) -> None:
    from loopline.airflow.operators import ValidateFilesOperator

    # The spec is gone by the time the provider asks: `lineage` cannot read the bucket.
    task = ValidateFilesOperator(
        task_id="validate", spec_path=str(tmp_path / "gone.yaml"), suite_path="x", keys=["a"]
    )
    task.keep_outcome([{"source": "a", "destination": "b"}])

    reported = task.get_openlineage_facets_on_complete(SimpleNamespace(run_id="r"))

    assert (reported.inputs, reported.outputs) == ([], [])
