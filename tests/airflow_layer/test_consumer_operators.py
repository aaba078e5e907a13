"""The consumer operators as a user's own DAG uses them: importable from one module, with
documented, templated arguments typed when the task runs; the generated ``stream_deploy``
DAG made of the same classes; and the example DAG in the docs parsed and run against a real
broker, S3 server and Keras champion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException
from loopline.airflow import operators
from loopline.airflow.operators import (
    ChooseConsumerActionOperator,
    DeployConsumersOperator,
    MonitorConsumersOperator,
    RollConsumersOperator,
    ScaleConsumersOperator,
    StopConsumersOperator,
)
from support.paths import DAGS_FOLDER, PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "streaming_consumers_dag.py"
SPEC = str(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
ACTIONS = (
    DeployConsumersOperator,
    RollConsumersOperator,
    ScaleConsumersOperator,
    StopConsumersOperator,
    MonitorConsumersOperator,
)
CONNECTIONS = ("kafka_conn_id", "kubernetes_conn_id", "aws_conn_id")


@pytest.fixture(scope="module")
def dags() -> dict:
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags


@pytest.mark.parametrize("operator", ACTIONS, ids=lambda cls: cls.__name__)
def test_each_action_is_public_and_documents_its_arguments(operator) -> None:
    assert operator.__name__ in operators.__all__
    documented = {line.split(":")[1].split()[1] for line in _param_lines(operator)}
    templated = set(operator.template_fields)
    assert templated <= {"model_version", "replicas"}
    assert {"spec_path", *CONNECTIONS, *templated} <= documented
    task = operator(
        task_id="t", spec_path=SPEC, **({"replicas": 2} if "replicas" in templated else {})
    )
    assert all(getattr(task, name) for name in CONNECTIONS)


def _param_lines(operator: type) -> list[str]:
    return [line.strip() for line in (operator.__doc__ or "").splitlines() if ":param " in line]


def test_the_generated_stream_deploy_dag_is_made_of_the_public_operators(dags) -> None:
    deploy_dag = dags["card_fraud.stream_deploy"]
    tasks = {task.task_id: task for task in deploy_dag.tasks}

    assert type(tasks["choose"]) is ChooseConsumerActionOperator
    assert tasks["choose"].branches == {"deploy": "deploy", "scale": "scale", "stop": "stop"}
    assert tasks["choose"].downstream_task_ids == {"deploy", "scale", "stop"}
    assert type(tasks["deploy"]) is DeployConsumersOperator
    assert type(tasks["scale"]) is ScaleConsumersOperator
    assert type(tasks["stop"]) is StopConsumersOperator
    assert tasks["deploy"].model_version == "{{ params.model_version }}"
    assert tasks["deploy"].replicas == "{{ params.replicas }}"
    [monitor] = dags["card_fraud.stream_monitor"].tasks
    assert type(monitor) is MonitorConsumersOperator


@pytest.mark.parametrize(
    ("action", "follows"),
    [("deploy", "deploy"), ("", "deploy"), (None, "deploy"), ("scale", "scale"), ("stop", "stop")],
    ids=["deploy", "empty", "none", "scale", "stop"],
)
def test_the_branch_follows_the_forms_action(dags, action, follows) -> None:
    """A champion event's run has the form's defaults: action deploy, so it deploys."""
    deploy_dag = dags["card_fraud.stream_deploy"]
    assert deploy_dag.params["action"] == "deploy"
    choose = ChooseConsumerActionOperator(
        task_id="choose", action=action, branches={a: a for a in ("deploy", "scale", "stop")}
    )
    assert choose.choose_branch({}) == follows


def test_a_bad_argument_fails_the_task_naming_it_before_any_work() -> None:
    """No connection exists here: the argument is checked before one is looked for."""
    deploy = DeployConsumersOperator(task_id="deploy", spec_path=SPEC, replicas="many")
    with pytest.raises(AirflowFailException, match=r"deploy: invalid arguments: replicas='many'"):
        deploy.execute({})
    roll = RollConsumersOperator(task_id="roll", spec_path=SPEC, model_version="v2")
    with pytest.raises(AirflowFailException, match=r"model_version='v2'"):
        roll.execute({})
    choose = ChooseConsumerActionOperator(task_id="choose", action="restart", branches={})
    with pytest.raises(AirflowFailException, match=r"action='restart'"):
        choose.choose_branch({})


def test_the_example_dag_parses_with_the_public_operators_only() -> None:
    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    dag = bag.dags["card_fraud_consumers_by_hand"]
    assert [type(t).__name__ for t in dag.topological_sort()] == [
        "DeployConsumersOperator",
        "ScaleConsumersOperator",
        "StopConsumersOperator",
    ]
    assert "from loopline.airflow.operators import" in EXAMPLE.read_text()


def test_the_example_dag_deploys_scales_and_stops_the_consumers(
    airflow_db, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.records import RecordStage, RecordStore
    from loopline.storage.objects import ObjectStore
    from support.batch_world import crown_champion, land_validated
    from support.servers import KafkaBroker
    from support.validated_data import DEMO

    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=3000)
    champion = crown_champion(store)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
    # dag.test() runs DAGs of a bundle: the docs' examples are one beside the dags folder.
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": "examples", "classpath": local, "kwargs": {"path": str(EXAMPLE.parent)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    with KafkaBroker.start() as broker:
        extra = {"bootstrap.servers": broker.bootstrap, "session.timeout.ms": "2000"}
        kafka = {"conn_type": "kafka", "extra": extra}  # as the local stack's connection
        monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka))
        dag = DagBag(dag_folder=str(EXAMPLE)).dags["card_fraud_consumers_by_hand"]
        try:
            run = dag.test(run_conf={"model_version": str(champion), "replicas": 1})
        finally:  # whatever failed, no replica outlives the test
            DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.stream_deploy"].test(
                run_conf={"action": "stop"}
            )

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert run.state == "success", states
    records = RecordStore(store, DEMO.data.bucket).records(
        DEMO.name, RecordStage.STREAMING, run.run_id
    )
    done = {r.subject: (r.verdict, r.payload["replicas"]) for r in records}
    assert done["deploy"] == ("done", {"0": champion})
    assert done["scale"] == ("done", {"0": champion, "1": champion})
    assert done["stop"][0] == "done"
