"""The retraining DAG through Airflow (``dag.test()``): real TensorFlow, registry on real S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.demo.card_transactions import generate
from loopline.records import RecordStore
from loopline.registry import CHALLENGER, CHAMPION, ModelRegistry
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import asset_events, use_spec_variant
from support.judged_versions import promote_in_turn
from support.paths import DAGS_FOLDER, PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")


@pytest.fixture
def cpu_only(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo spec with training pinned to the CPU: ops are deterministic only there, so
    two trainings on the same data give the same model on any machine, GPU or not."""
    use_spec_variant(
        tmp_path, monkeypatch, lambda spec: spec["training"].update(use_gpu_if_available=False)
    )


@pytest.fixture
def registry(airflow_db, s3, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    day = datetime.now(UTC) - timedelta(days=1)
    key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/history.parquet"
    store.put_new(SPEC.data.bucket, key, encode(generate(20_000, seed=8, start=day), "parquet"))
    return ModelRegistry(store, SPEC.data.bucket)


def test_first_training_becomes_champion_and_an_equal_one_stays_challenger(
    registry, cpu_only
) -> None:
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.train"]

    first = dag.test(run_conf={"epochs": 8, "reason": "first model"})

    assert first.state == "success"
    assert registry.alias("card_fraud", CHAMPION) == 1
    record = registry.get("card_fraud", 1)
    assert record.lineage["dag_id"] == "card_fraud.train"
    assert record.lineage["run_id"] == first.run_id and record.lineage["reason"] == "first model"
    assert record.snapshot["objects"][0]["key"].endswith("history.parquet")
    assert record.training["device"] == "CPU" and record.training["samples_per_second"] > 0
    [event] = asset_events("s3://loopline/models/card_fraud/aliases/champion", first.run_id)
    assert event.extra["version"] == 1
    records = list(
        RecordStore(registry.store, "loopline").records("card_fraud", run_id=first.run_id)
    )
    costs = [r for r in records if r.stage == "cost"]  # one per task try, beside the decisions
    assert {r.task_id for r in costs} == {t.task_id for t in dag.tasks} - {"approve"}
    records = [r for r in records if r.stage != "cost"]
    assert [(r.stage, r.verdict) for r in records] == [
        ("snapshot", "taken"),
        ("training", "registered"),
        ("judgement", "promote"),
        ("promotion", "champion"),
    ]
    assert {(r.dag_id, r.try_number) for r in records} == {("card_fraud.train", 1)}

    # Same data, same seed: the same model. A tie never promotes.
    second = dag.test(run_conf={"epochs": 8, "reason": "same again"})

    states = {ti.task_id: str(ti.state) for ti in second.get_task_instances()}
    assert states["promote"] == "skipped"
    assert registry.alias("card_fraud", CHAMPION) == 1
    assert registry.alias("card_fraud", CHALLENGER) == 2
    assert registry.get("card_fraud", 2).parent_champion == 1


def test_the_rollback_dag_restores_the_previous_champion(registry, tmp_path) -> None:
    promote_in_turn(registry, tmp_path, versions=2)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.rollback"]

    run = dag.test(run_conf={"reason": "scores look wrong"})

    assert run.state == "success"
    assert registry.alias("card_fraud", CHAMPION) == 1
    last = registry.history("card_fraud", CHAMPION)[-1]
    assert (last.action, last.reason) == ("rollback", "scores look wrong")
    assert last.by == f"airflow:card_fraud.rollback/{run.run_id}"


def test_a_retried_rollback_rolls_back_once(registry, tmp_path) -> None:
    from types import SimpleNamespace

    from loopline.airflow.operators import RollbackChampionOperator

    promote_in_turn(registry, tmp_path, versions=3)
    operator = RollbackChampionOperator(
        task_id="rollback", spec_path=str(PIPELINES / "card_fraud.yaml"), reason="oops"
    )
    context = {
        "dag": SimpleNamespace(dag_id="card_fraud.rollback"),
        "run_id": "manual__1",
        "ti": SimpleNamespace(try_number=1),
        "outlet_events": {},
    }

    first = operator.execute(context)
    retried = operator.execute(context)  # the worker died after the move: Airflow retries

    assert first == retried == {"version": 2, "previous": 3, "action": "rollback"}
    assert registry.alias("card_fraud", CHAMPION) == 2
    assert [m.action for m in registry.history("card_fraud", CHAMPION)].count("rollback") == 1


def test_require_approval_puts_a_human_between_judge_and_promote(
    airflow_db, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    use_spec_variant(
        tmp_path, monkeypatch, lambda spec: spec["promotion"].update(require_approval=True)
    )

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.train"]

    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert approve.upstream_task_ids == {"judge"}
    assert approve.downstream_task_ids == {"promote"}
    assert approve.assigned_users is None  # no approvers named: anyone who may answer HITL


def test_the_approve_task_is_assigned_to_the_specs_approvers(
    airflow_db, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_spec_variant(
        tmp_path,
        monkeypatch,
        lambda spec: spec["promotion"].update(require_approval=True, approvers=["ana", "bo"]),
    )

    approve = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.train"].get_task("approve")

    # Airflow's HITL endpoint lets only these user ids answer.
    assert approve.assigned_users == [{"id": "ana", "name": "ana"}, {"id": "bo", "name": "bo"}]
    assert "one of ana, bo" in approve.doc_md


def test_a_backfill_trains_on_data_with_past_dates(airflow_db, s3, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    past = datetime(2024, 6, 20, tzinfo=UTC)
    key = f"{SPEC.data.validated_prefix}dt={past:%Y-%m-%d}/history.parquet"
    store.put_new(SPEC.data.bucket, key, encode(generate(4000, seed=8, start=past), "parquet"))
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.train"]

    run = dag.test(run_conf={"epochs": 1, "window_end": "2024-06-30"}, logical_date=None)

    assert run.state == "success"
    [version] = ModelRegistry(store, SPEC.data.bucket).versions("card_fraud")
    assert version.snapshot["window_end"].startswith("2024-06-30T00:00:00")


def test_an_empty_window_fails_a_manual_run_and_skips_a_scheduled_one(
    airflow_db, s3, monkeypatch
) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from loopline.airflow.operators import TrainingSnapshotOperator

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    key = f"{SPEC.data.validated_prefix}dt=2024-06-20/history.parquet"
    store.put_new(SPEC.data.bucket, key, encode(generate(100, seed=8), "parquet"))
    operator = TrainingSnapshotOperator(
        task_id="snapshot", spec_path=str(PIPELINES / "card_fraud.yaml"), window_days="30"
    )

    def context(run_type: object) -> dict:
        now = datetime.now(UTC)
        run = SimpleNamespace(run_type=run_type, data_interval_end=None, run_after=now)
        return {"dag_run": run, "run_id": "r", "dag": SimpleNamespace(dag_id="card_fraud.train")}

    with pytest.raises(AirflowFailException) as failed:
        operator.execute(context("manual"))
    message = str(failed.value)
    assert "no validated rows for card_fraud between" in message and "(window_days 30)" in message
    assert "the validated zone holds 1 object(s) dated 2024-06-20 .. 2024-06-20" in message
    assert "run with window_end (a backfill)" in message
    # The run type as the Task SDK gives it to a task (an enum whose str() is not its value).
    from airflow.sdk.api.datamodels._generated import DagRunType

    with pytest.raises(AirflowSkipException, match="nothing to train on: no validated rows"):
        operator.execute(context(DagRunType.SCHEDULED))
