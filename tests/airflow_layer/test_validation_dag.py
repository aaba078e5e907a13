"""The validation DAG, run whole by Airflow (``dag.test()``) on a real S3 server with real
Great Expectations: good files move on, bad ones are quarantined with a report, and the run
fails naming them (or not, as the spec says)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.demo.card_transactions import generate
from loopline.records import RecordStore
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore, sha256_hex
from support.airflow_runs import asset_events, use_spec_variant
from support.bad_batches import BAD_BATCHES
from support.paths import DAGS_FOLDER

LANDING = "card_fraud/landing/dt=2026-11-23/"


def land_three_files(store: ObjectStore) -> None:
    store.ensure_bucket("loopline")
    # Distinct batch ids: distinct transaction ids (the same ids would be a replayed batch).
    a, b = generate(400, seed=1, batch_id="a"), generate(300, seed=2, batch_id="b")
    store.put_new("loopline", LANDING + "a.parquet", encode(a, "parquet"))
    store.put_new("loopline", LANDING + "b.csv", encode(b, "csv"))
    bad = generate(100, seed=3, batch_id="c").drop_columns(["channel"])
    store.put_new("loopline", LANDING + "c.parquet", encode(bad, "parquet"))


def use_validation_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **changes) -> None:
    """The demo spec with other validation settings."""
    use_spec_variant(tmp_path, monkeypatch, lambda spec: spec["validation"].update(changes))


def mapped_names(run) -> list[str]:
    return sorted(ti.rendered_map_index for ti in run.get_task_instances() if ti.map_index >= 0)


def task_states(run) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


@pytest.fixture
def store(airflow_db, s3, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    land_three_files(store)
    return store


def test_bad_file_is_quarantined_and_fails_the_run(store) -> None:
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "failed"
    states = task_states(run)
    assert states["verdict"] == ["failed"]
    assert states["publish_validated"] == ["success"]
    # Three small files: one task, named in the UI by its files, not 0.
    assert states["validate"] == ["success"]
    assert mapped_names(run) == ["dt=2026-11-23/a.parquet … dt=2026-11-23/c.parquet (3 files)"]
    keys = sorted(k for k in store.list_keys("loopline", "card_fraud/"))
    assert keys == [
        "card_fraud/archive/dt=2026-11-23/b.csv",
        "card_fraud/quarantine/dt=2026-11-23/c.parquet",
        "card_fraud/quarantine/dt=2026-11-23/c.parquet.report.html",
        "card_fraud/quarantine/dt=2026-11-23/c.parquet.report.json",
        "card_fraud/validated/dt=2026-11-23/a.parquet",
        "card_fraud/validated/dt=2026-11-23/b.csv.parquet",
    ]
    report = json.loads(store.get("loopline", keys[3]))
    assert any("channel" in reason for reason in report["reasons"])
    [event] = asset_events("s3://loopline/card_fraud/validated", run.run_id)
    assert sorted(event.extra["keys"]) == keys[4:] and event.extra["rows"] == 700
    records = RecordStore(store, "loopline").records("card_fraud", "validation", run.run_id)
    outcomes = {r.subject: (r.verdict, r.inputs[0].sha256 is not None) for r in records}
    assert outcomes == {
        "dt=2026-11-23/a.parquet": ("validated", True),
        "dt=2026-11-23/b.csv": ("validated", True),
        "dt=2026-11-23/c.parquet": ("quarantined", True),
        "run": ("failed", True),
    }


def test_files_are_validated_in_groups_of_the_specs_size_each_file_routed(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_validation_variant(tmp_path, monkeypatch, files_per_task=2, fail_run_on_invalid=False)
    store.put_new(
        "loopline", LANDING + "d.parquet", encode(generate(50, seed=9, batch_id="d"), "parquet")
    )
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "success"
    assert task_states(run)["validate"] == ["success", "success"]
    assert mapped_names(run) == [
        "dt=2026-11-23/a.parquet … dt=2026-11-23/b.csv (2 files)",
        "dt=2026-11-23/c.parquet … dt=2026-11-23/d.parquet (2 files)",
    ]
    [event] = asset_events("s3://loopline/card_fraud/validated", run.run_id)
    assert event.extra["rows"] == 400 + 300 + 50
    records = RecordStore(store, "loopline").records("card_fraud", "validation", run.run_id)
    assert sorted(r.subject for r in records if r.subject != "run") == [
        "dt=2026-11-23/" + name for name in ("a.parquet", "b.csv", "c.parquet", "d.parquet")
    ]


def test_a_file_that_cannot_be_validated_fails_its_task_not_the_rest_of_its_group(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    from loopline.validation import gate

    use_spec_variant(tmp_path, monkeypatch, lambda spec: spec.update(retries=0))
    validate = gate.validate_and_route

    def s3_fails_for_b(store, data_spec, suite, key, **kwargs):
        if key.endswith("b.csv"):
            raise ConnectionError("the S3 endpoint went away")
        return validate(store, data_spec, suite, key, **kwargs)

    monkeypatch.setattr(gate, "validate_and_route", s3_fails_for_b)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "failed"
    states = task_states(run)
    assert states["validate"] == ["failed"] and states["publish_validated"] == ["success"]
    # The files before and after it were routed and reported; it stays in landing.
    assert store.head("loopline", "card_fraud/validated/dt=2026-11-23/a.parquet")
    assert store.head("loopline", "card_fraud/quarantine/dt=2026-11-23/c.parquet")
    assert list(store.list_keys("loopline", "card_fraud/landing/")) == [LANDING + "b.csv"]
    [event] = asset_events("s3://loopline/card_fraud/validated", run.run_id)
    assert event.extra["rows"] == 400
    output = capfd.readouterr()
    log = output.out + output.err
    assert "1 of 3 file(s) could not be validated" in log and "endpoint went away" in log
    assert f"{LANDING}b.csv: not validated (its task failed); it stays in landing" in log
    records = RecordStore(store, "loopline").records("card_fraud", "validation", run.run_id)
    [verdict] = [r for r in records if r.subject == "run"]
    assert verdict.numbers["unchecked"] == 1 and verdict.numbers["passed"] == 1


def test_quarantine_only_spec_keeps_the_run_green(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_validation_variant(tmp_path, monkeypatch, fail_run_on_invalid=False)

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]
    run = dag.test()

    assert run.state == "success"
    assert task_states(run)["verdict"] == ["success"]
    assert "card_fraud/quarantine/dt=2026-11-23/c.parquet" in set(store.list_keys("loopline"))
    assert not list(store.list_keys("loopline", "card_fraud/landing/"))


def test_the_specs_read_limits_reach_the_gate(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validation.max_rows from the spec: a.parquet's footer states 400 rows, over 350, so it
    is quarantined unread as too large; b.csv behind it in the group still passes."""
    use_validation_variant(tmp_path, monkeypatch, max_rows=350, fail_run_on_invalid=False)

    run = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"].test()

    assert run.state == "success"
    quarantined = "card_fraud/quarantine/dt=2026-11-23/a.parquet"
    report = json.loads(store.get("loopline", quarantined + ".report.json"))
    assert report["unreadable"]["kind"] == "too large"
    assert (report["unreadable"]["footer_rows"], report["unreadable"]["max_rows"]) == (400, 350)
    assert "card_fraud/validated/dt=2026-11-23/b.csv.parquet" in set(store.list_keys("loopline"))


def test_the_run_waits_deferred_until_a_file_lands(
    airflow_db, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    use_validation_variant(tmp_path, monkeypatch, wait_minutes=1, poll_seconds=1)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]
    data = encode(generate(200, seed=9), "parquet")
    deferred = land_when_the_trigger_runs(monkeypatch, store, data)

    run = dag.test()

    assert run.state == "success"
    assert deferred, "the sensor never deferred to the triggerer"
    assert sorted(store.list_keys("loopline", "card_fraud/")) == [
        "card_fraud/validated/dt=2026-11-23/late.parquet"
    ]


def land_when_the_trigger_runs(
    monkeypatch: pytest.MonkeyPatch, store: ObjectStore, data: bytes
) -> list[str]:
    """Land a file only once the sensor has deferred and its trigger runs (a trigger runs
    only for a deferred task): proof that the wait happens in the triggerer."""
    from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger

    started: list[str] = []
    original_run = S3KeyTrigger.run

    async def run_after_landing(trigger):
        started.append("trigger")
        store.put_new("loopline", LANDING + "late.parquet", data)
        async for event in original_run(trigger):
            yield event

    monkeypatch.setattr(S3KeyTrigger, "run", run_after_landing)
    return started


def test_every_kind_of_bad_batch_is_quarantined_through_the_dag(
    airflow_db, s3, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    landed = {}
    for bad in BAD_BATCHES:
        data = bad.make()
        store.put_new("loopline", LANDING + bad.landed_name, data)
        landed[bad.landed_name] = sha256_hex(data)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "failed"
    assert task_states(run)["verdict"] == ["failed"]
    assert not list(store.list_keys("loopline", "card_fraud/landing/"))
    assert not list(store.list_keys("loopline", "card_fraud/validated/"))
    quarantine = "card_fraud/quarantine/dt=2026-11-23/"
    output = capfd.readouterr()
    verdict_log = output.out + output.err
    assert f"{len(BAD_BATCHES)} of {len(BAD_BATCHES)} file(s) did not pass" in verdict_log
    for bad in BAD_BATCHES:
        key = quarantine + bad.landed_name
        assert sha256_hex(store.get("loopline", key)) == landed[bad.landed_name], bad.name
        reasons = json.loads(store.get("loopline", key + ".report.json"))["reasons"]
        assert any(re.search(bad.reason, reason) for reason in reasons), (bad.name, reasons)
        assert LANDING + bad.landed_name in verdict_log, bad.name


def test_row_split_moves_good_rows_on_without_failing_the_run(
    airflow_db, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    use_validation_variant(tmp_path, monkeypatch, row_split=True, max_rejected_row_share=0.05)
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    mixed = generate(300, seed=4, batch_id="mixed")
    amounts = mixed.column("amount").to_pylist()
    amounts[0] = amounts[1] = -1.0
    mixed = mixed.set_column(
        mixed.column_names.index("amount"), "amount", pa.array(amounts, pa.float32())
    )
    store.put_new("loopline", LANDING + "mixed.parquet", encode(mixed, "parquet"))
    store.put_new(
        "loopline",
        LANDING + "good.parquet",
        encode(generate(200, seed=5, batch_id="good"), "parquet"),
    )
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "success"
    assert sorted(store.list_keys("loopline", "card_fraud/")) == [
        "card_fraud/quarantine/dt=2026-11-23/mixed.parquet",
        "card_fraud/quarantine/dt=2026-11-23/mixed.parquet.rejected.parquet",
        "card_fraud/quarantine/dt=2026-11-23/mixed.parquet.report.html",
        "card_fraud/quarantine/dt=2026-11-23/mixed.parquet.report.json",
        "card_fraud/validated/dt=2026-11-23/good.parquet",
        "card_fraud/validated/dt=2026-11-23/mixed.parquet",
    ]
    [event] = asset_events("s3://loopline/card_fraud/validated", run.run_id)
    assert event.extra["rows"] == 200 + 298
    [verdict] = [ti for ti in run.get_task_instances() if ti.task_id == "verdict"]
    counts = verdict.xcom_pull(task_ids="verdict")
    assert counts["split"] == 1 and counts["passed"] == 1 and counts["rows_rejected"] == 2


def test_a_run_with_nothing_to_validate_ends_at_once_saying_so(
    airflow_db, s3, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    ObjectStore(s3.client()).ensure_bucket("loopline")
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "success"
    states = task_states(run)
    assert states["list_landed"] == ["skipped"] and "wait_for_landing" not in states
    assert states["verdict"] == ["skipped"]
    output = capfd.readouterr()
    assert (
        "nothing to validate: s3://loopline/card_fraud/landing/ is empty" in output.out + output.err
    )


def test_a_listing_that_fails_fails_the_run_instead_of_ending_green(
    airflow_db, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    use_spec_variant(tmp_path, monkeypatch, lambda spec: spec.update(retries=0))
    # No bucket: listing it fails (NoSuchBucket), as it would with S3 unreachable.
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "failed"
    states = task_states(run)
    assert states["list_landed"] == ["failed"] and states["verdict"] == ["failed"]


def test_a_replayed_batch_fails_the_run_naming_its_duplicate_keys(
    airflow_db, s3, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    from datetime import UTC, datetime

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    rows = encode(generate(200, seed=40, start=datetime(2026, 11, 23, 2, tzinfo=UTC)), "parquet")
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]
    store.put_new("loopline", LANDING + "original.parquet", rows)
    assert dag.test().state == "success"

    store.put_new("loopline", "card_fraud/landing/dt=2026-11-24/retry.parquet", rows)
    run = dag.test()

    assert run.state == "failed"
    output = capfd.readouterr()
    assert "duplicate_keys: 200 row(s) have a key already validated" in output.out + output.err
    assert store.head("loopline", "card_fraud/quarantine/dt=2026-11-24/retry.parquet")


def test_a_failed_run_leaves_a_debug_bundle_and_every_try_its_cost(
    store, s3, monkeypatch, capsys
) -> None:
    from loopline.records.debug import pinned_spec, read_bundles
    from loopline.spec import spec_sha256
    from support.paths import PIPELINES

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.validate"]

    run = dag.test()

    assert run.state == "failed"
    [bundle] = read_bundles(store, "loopline", "card_fraud", run.run_id)
    assert (bundle.task_id, bundle.try_number, bundle.state) == ("verdict", 1, "failed")
    assert bundle.error.type == "AirflowFailException" and "did not pass" in bundle.error.message
    assert bundle.error.chain[0].startswith("RunDidNotPass: 1 of 3 file(s) did not pass")
    [offender] = bundle.sample["files"]
    assert offender["landed_as"] == LANDING + "c.parquet"
    assert any("channel" in reason for reason in offender["reasons"])
    assert len(offender["first_rows"]) == 3 and "channel" not in offender["first_rows"][0]
    assert offender["first_rows"][0]["event_time"].startswith("2026-")  # ISO, not a repr
    # The spec as the run's first task pinned it, and the log's three addresses.
    planned = spec_sha256(PIPELINES / "card_fraud.yaml")
    assert bundle.spec is not None and bundle.spec.sha256 == planned
    assert pinned_spec(store, "loopline", "card_fraud", dag.dag_id, run.run_id) == bundle.spec
    assert bundle.log.api_path and bundle.log.api_path.endswith("/taskInstances/verdict/logs/1")
    assert bundle.log.ui_url and "/tasks/verdict" in bundle.log.ui_url
    # The failure record points to it.
    [failure] = RecordStore(store, "loopline").records("card_fraud", "failure", run.run_id)
    assert failure.subject == "verdict.try1" and failure.payload["bundle"].startswith(
        "s3://loopline/debug/card_fraud/"
    )
    # Every try recorded what it cost, failed or not; the validate task read the landed bytes.
    costs = {r.subject: r for r in RecordStore(store, "loopline").records("card_fraud", "cost")}
    tries = {ti.task_id for ti in run.get_task_instances()} - {"wait_for_landed_files"}
    assert {subject.split("[")[0].removesuffix(".try1") for subject in costs} >= tries
    assert costs["verdict.try1"].verdict == "failed"
    validate = next(r for subject, r in costs.items() if subject.startswith("validate"))
    assert validate.verdict == "success" and validate.numbers["wall_seconds"] > 0
    assert validate.numbers["bytes_read"] > 0 and validate.numbers["bytes_written"] > 0
    # ...which `loopline cost` adds up per stage, with the rows the gate's records name.
    for name, value in s3.cli_environment().items():
        monkeypatch.setenv(name, value)
    from loopline.cli import main
    from support.paths import PROJECT_ROOT

    capsys.readouterr()
    assert main(["--project", str(PROJECT_ROOT), "cost", "card_fraud"]) == 0
    out = capsys.readouterr().out
    per_stage = out.split("per stage\n", 1)[1].split("\n\n", 1)[0]
    [line] = [line for line in per_stage.splitlines() if line.startswith("validate ")]
    assert "800" in line.split()  # 400 + 300 + 100 rows in
    assert "a day of card_fraud:" in out
