"""The drift audit DAG through Airflow (``dag.test()``) with a real Keras champion, real S3
and real Evidently: an undrifted window retrains nothing; a drifted one starts
``<pipeline>.train`` (no logical date) with a reason that names the verdict and the report;
the report task renders the report beside the retrain, and its failure fails it alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.demo.card_transactions import DriftKnobs, generate
from loopline.records import RecordStage, RecordStore
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import use_spec_variant
from support.batch_world import crown_champion, land_validated, use_connections
from support.paths import DAGS_FOLDER


def audit_world(s3, monkeypatch: pytest.MonkeyPatch):
    use_connections(monkeypatch, s3, "local[2]")
    store = ObjectStore(s3.client())
    day = land_validated(store, objects=2, rows=4000)
    version = crown_champion(store)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.drift_audit"]
    return store, dag, day, version


@pytest.fixture
def world(airflow_db, s3, monkeypatch: pytest.MonkeyPatch):
    return audit_world(s3, monkeypatch)


def land_drifted(store: ObjectStore, day) -> None:
    drifted = generate(
        4000, seed=77, drift=DriftKnobs(mean_shift=1.0, drifted_features=6), start=day
    )
    key = f"card_fraud/validated/dt={day:%Y-%m-%d}/drifted.parquet"
    store.put_new("loopline", key, encode(drifted, "parquet"))


def train_runs(run_id: str) -> list:
    from airflow.models import DagRun

    return DagRun.find(dag_id="card_fraud.train", run_id=run_id)


def test_an_undrifted_window_is_audited_and_retrains_nothing(
    world, capfd: pytest.CaptureFixture[str]
) -> None:
    store, dag, _, version = world

    run = dag.test()

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert run.state == "success"
    assert states == {"audit": "success", "retrain": "skipped", "report": "success"}
    records = RecordStore(store, "loopline")
    record = records.read("card_fraud", RecordStage.DRIFT, run.run_id)
    assert record.verdict == "within_limits" and record.payload["champion"] == version
    assert record.numbers["auc_current"] > 0.5  # the real champion scored the labelled sample
    assert not train_runs(f"drift_audit__{run.run_id}")
    # The report task wrote the report where the audit's record said it would land.
    rendered = records.read("card_fraud", RecordStage.DRIFT, run.run_id, subject="report")
    assert rendered.outputs[0].uri == record.payload["report"]
    html_key = record.payload["report"].removeprefix("s3://loopline/")
    assert store.head("loopline", html_key)["ContentEncoding"] == "gzip"
    assert store.head("loopline", html_key.replace(".html", ".json"))
    # The report embeds raw rows: the log names it by URI, and holds no link that would open
    # it to whoever reads the log (presigned: SigV4's X-Amz-Signature or SigV2's Signature=).
    log = "".join(capfd.readouterr())  # dag.test() writes the task logs to the terminal
    assert "report: s3://loopline/reports/card_fraud/" in log
    assert "Signature=" not in log and "X-Amz-Credential" not in log


def test_a_drifted_window_starts_retraining_with_its_reason(world) -> None:
    store, dag, day, _ = world
    land_drifted(store, day)

    run = dag.test(logical_date=None)

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"audit": "success", "retrain": "success", "report": "success"}
    [train] = train_runs(f"drift_audit__{run.run_id}")
    reason = train.conf["reason"]
    assert reason.startswith(f"drift audit {run.run_id}: ") and "features drifted" in reason
    assert "reports/card_fraud/" in reason and len(reason) <= 500
    assert train.logical_date is None
    record = RecordStore(store, "loopline").read("card_fraud", RecordStage.DRIFT, run.run_id)
    assert record.verdict == "retrain" and record.numbers["retrain"] == 1.0
    assert datetime.now(UTC) > record.ended_at


def test_a_failed_report_fails_its_task_alone_after_the_decision_and_the_retrain(
    airflow_db, s3, tmp_path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from loopline.drift import report

    use_spec_variant(tmp_path, monkeypatch, lambda spec: spec.update(retries=0))

    def evidently_breaks(*args, **kwargs):
        raise RuntimeError("Evidently could not render the report")

    monkeypatch.setattr(report, "render", evidently_breaks)
    store, dag, day, _ = audit_world(s3, monkeypatch)
    land_drifted(store, day)

    run = dag.test(logical_date=None)

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"audit": "success", "retrain": "success", "report": "failed"}
    assert run.state == "failed"  # loud: the run says a task failed
    assert "Evidently could not render the report" in "".join(capfd.readouterr())
    record = RecordStore(store, "loopline").read("card_fraud", RecordStage.DRIFT, run.run_id)
    assert record.verdict == "retrain"
    [train] = train_runs(f"drift_audit__{run.run_id}")
    assert record.payload["report"] in train.conf["reason"]  # where it would have landed
    assert store.head("loopline", record.payload["report"].removeprefix("s3://loopline/")) is None
