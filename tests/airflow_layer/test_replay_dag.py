"""The replay DAG, run whole by Airflow (``dag.test(run_conf=...)``) on a real S3 server: a
file the suite quarantined goes back to landing once the suite is fixed, the run emits the
landing event the validate DAG is scheduled on, and that DAG's next run validates the file;
a refused replay fails its run naming the key, recorded like a replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.demo.card_transactions import generate
from loopline.records import RecordStore
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import asset_events, use_spec_variant
from support.paths import DAGS_FOLDER

DAY = "dt=2026-11-23/"
LANDED = f"card_fraud/landing/{DAY}c.parquet"
QUARANTINED = f"card_fraud/quarantine/{DAY}c.parquet"


def set_row_limit(suite_file: Path, max_rows: int | None) -> None:
    document = json.loads(suite_file.read_text())
    for expectation in document["expectations"]:
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["kwargs"]["max_value"] = max_rows
    suite_file.write_text(json.dumps(document))


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture
def store(airflow_db, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """One file quarantined by the validate DAG under a suite too strict for it."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    use_spec_variant(tmp_path, monkeypatch, lambda spec: spec.update(retries=0))
    set_row_limit(tmp_path / "expectations" / "card_fraud.json", 10)
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    store.put_new("loopline", LANDED, encode(generate(100, seed=3, batch_id="c"), "parquet"))
    validate = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]
    assert validate.test().state == "failed"
    assert store.head("loopline", QUARANTINED) is not None
    return store


def test_a_replayed_file_is_validated_by_the_next_validate_run(
    store: ObjectStore, tmp_path: Path
) -> None:
    set_row_limit(tmp_path / "expectations" / "card_fraud.json", None)  # the suite, fixed
    dags = DagBag(dag_folder=str(DAGS_FOLDER)).dags
    replay = dags["card_fraud.replay"]

    run = replay.test(run_conf={"what": "quarantine", "objects": [QUARANTINED]})

    assert run.state == "success"
    states = task_states(run)
    assert states["replay_quarantined"] == "success" and states["replay_dead_letters"] == "skipped"
    assert store.head("loopline", LANDED) is not None
    assert store.head("loopline", QUARANTINED) is None
    [event] = asset_events("s3://loopline/card_fraud/landing", run.run_id)
    assert event.extra["keys"] == [LANDED]
    # That event is what the validate DAG runs on: its next run takes the file.
    validate = dags["card_fraud.validate"]
    assert "card_fraud.landing" in str(validate.timetable.asset_condition)
    assert validate.test().state == "success"
    assert store.head("loopline", f"card_fraud/validated/{DAY}c.parquet") is not None
    records = RecordStore(store, "loopline").records("card_fraud", "replay", run.run_id)
    assert [(r.verdict, r.task_id) for r in records] == [("requeued", "replay_quarantined")]


def test_a_refused_replay_fails_the_run_naming_the_key(store: ObjectStore) -> None:
    replay = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.replay"]
    elsewhere = f"card_fraud/validated/{DAY}c.parquet"

    run = replay.test(run_conf={"what": "quarantine", "objects": [elsewhere]})

    assert run.state == "failed"
    assert task_states(run)["replay_quarantined"] == "failed"
    assert asset_events("s3://loopline/card_fraud/landing", run.run_id) == []
    [record] = RecordStore(store, "loopline").records("card_fraud", "replay", run.run_id)
    assert record.verdict == "refused"
    assert record.reasons == ["outside the pipeline's quarantine prefix 'card_fraud/quarantine/'"]
    assert store.head("loopline", QUARANTINED) is not None
