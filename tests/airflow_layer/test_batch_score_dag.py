"""The batch scoring DAG through Airflow: spark-submit on local mode, real S3, the champion."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.data.predictions import committed_partitions
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import asset_events
from support.batch_world import SPEC, crown_champion, land_validated, use_connections
from support.paths import DAGS_FOLDER


@pytest.fixture
def world(airflow_db, s3, monkeypatch: pytest.MonkeyPatch):
    use_connections(monkeypatch, s3, "local[2,4]")
    store = ObjectStore(s3.client())
    yesterday = land_validated(store, objects=1, rows=4000)
    return store, crown_champion(store), yesterday


def test_the_champion_scores_the_window_and_the_output_is_committed(world) -> None:
    store, version, yesterday = world
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]

    run = dag.test(run_conf={"window_days": 2})

    assert run.state == "success"
    files = _committed(store, yesterday)
    scored = decode(store.get(SPEC.data.bucket, files[0]), "parquet")
    assert scored.num_rows == 4000
    assert set(scored.column_names) >= {
        "transaction_id",
        "is_fraud",
        "score",
        "model_version",
        "airflow_run_id",
    }
    assert set(scored["model_version"].to_pylist()) == {version}
    assert set(scored["airflow_run_id"].to_pylist()) == {run.run_id}
    [event] = asset_events("s3://loopline/card_fraud/predictions", run.run_id)
    assert event.extra["rows"] == 4000 and event.extra["model_version"] == version
    assert event.extra["spark_master"] == "local[2,4]"
    # The task's cost counts what its Spark job moved: the validated object it scored and
    # the files it wrote (staged, then copied server-side into place).
    from loopline.records import RecordStage, RecordStore

    [cost] = [
        record
        for record in RecordStore(store, SPEC.data.bucket).records(SPEC.name, RecordStage.COST)
        if record.run_id == run.run_id and record.task_id == "score"
    ]
    validated = list(store.list_keys(SPEC.data.bucket, SPEC.data.validated_prefix))
    read_size = sum(store.head(SPEC.data.bucket, key)["ContentLength"] for key in validated)
    written_size = sum(store.head(SPEC.data.bucket, key)["ContentLength"] for key in files)
    assert cost.numbers["bytes_read"] >= read_size > 0
    assert cost.numbers["bytes_written"] >= written_size > 0


def test_batches_landed_in_any_format_are_scored_after_the_gate_and_trace_back(
    airflow_db, s3, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """CSV, JSON Lines and Parquet holding float64 where the spec says float32: the gate
    writes each to the validated zone as Parquet in the spec's types, and scoring reads all."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    from loopline.cli import main
    from loopline.demo.card_transactions import generate
    from loopline.records import RunContext
    from loopline.storage.formats import encode
    from loopline.validation.gate import validate_and_route
    from loopline.validation.suites import load_suite
    from support.paths import PROJECT_ROOT

    use_connections(monkeypatch, s3, "local[2,4]")
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    suite = load_suite(PROJECT_ROOT / "include" / "expectations" / "card_fraud.json")
    # 01:00 yesterday: the rows' timestamps stay inside that day's partition whatever the
    # time of day (started near midnight, rows spilled into today's and the count fell short).
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=1, minute=0, second=0)
    batches = {"csv": 700, "jsonl": 500, "parquet": 900}
    for number, (file_format, rows) in enumerate(batches.items()):
        table = generate(rows, seed=20 + number, start=day, batch_id=f"f{number}")
        if file_format == "parquet":
            index = table.schema.get_field_index("amount")
            table = table.set_column(index, "amount", table["amount"].cast(pa.float64()))
        key = f"{SPEC.data.landing_prefix}dt={day:%Y-%m-%d}/batch.{file_format}"
        store.put_new(SPEC.data.bucket, key, encode(table, file_format))
        gate_run = RunContext(SPEC.name, "validate-by-hand", "card_fraud.validate", "validate")
        assert validate_and_route(store, SPEC.data, suite, key, run=gate_run).passed
    version = crown_champion(store)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]

    run = dag.test(run_conf={"window_days": 2}, logical_date=None)

    assert run.state == "success"
    scored = [decode(store.get(SPEC.data.bucket, key), "parquet") for key in _committed(store, day)]
    assert sum(table.num_rows for table in scored) == sum(batches.values())

    # Any scored row traces back to its model, its training run and the file it landed in.
    for name, value in s3.cli_environment().items():
        monkeypatch.setenv(name, value)
    row = next(table for table in scored if table.num_rows).slice(0, 1).to_pylist()[0]
    assert row["source_object"].startswith(SPEC.data.validated_prefix)
    capsys.readouterr()
    assert main(["--project", str(PROJECT_ROOT), "trace", "card_fraud", row["transaction_id"],
                 "--source", "batch"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"batch prediction of {row['transaction_id']}: score {row['score']:.6f}" in out
    assert f"scored by run {run.run_id}" in out and f"model card_fraud v{version}" in out
    landed = validation_source(store, row["source_object"])
    assert f"landed as {landed} " in out and "validated by run validate-by-hand: validated" in out
    assert "not found" not in out or "no drift audit covered" in out
    assert main(["--project", str(PROJECT_ROOT), "trace", "card_fraud", "no-such-key",
                 "--source", "batch"]) == 1  # fmt: skip
    assert "no prediction of 'no-such-key' found (searched batch output" in capsys.readouterr().out


def validation_source(store: ObjectStore, validated_key: str) -> str:
    """The landed object the gate wrote `validated_key` from, as its record says."""
    from loopline.records import RecordStore

    for record in RecordStore(store, SPEC.data.bucket).records(SPEC.name, "validation"):
        if any(ref.uri.endswith("/" + validated_key) for ref in record.outputs):
            return record.inputs[0].uri
    raise AssertionError(f"no validation record wrote {validated_key}")


def test_a_manual_run_over_an_empty_window_fails_naming_the_dates_then_a_backfill_scores(
    airflow_db, s3, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """What a second pipeline met: data 11 days old, the default one-day window. The run used
    to succeed having scored 0 rows; now it fails saying which dates hold data, and the form's
    window_end scores them."""
    from datetime import UTC, datetime, timedelta

    from loopline.demo.card_transactions import generate
    from loopline.storage.formats import encode

    use_connections(monkeypatch, s3, "local[2,4]")
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    day = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=11)
    key = f"{SPEC.data.validated_prefix}dt={day:%Y-%m-%d}/old.parquet"
    store.put_new(SPEC.data.bucket, key, encode(generate(800, seed=5, start=day), "parquet"))
    crown_champion(store)
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]

    empty = dag.test(logical_date=None)

    assert empty.state == "failed"
    output = capfd.readouterr()
    assert f"the validated zone holds 1 object(s) dated {day:%Y-%m-%d}" in output.out + output.err

    backfill = dag.test(run_conf={"window_end": f"{day + timedelta(days=1):%Y-%m-%d}"})

    assert backfill.state == "success"
    [event] = asset_events("s3://loopline/card_fraud/predictions", backfill.run_id)
    assert event.extra["rows"] == 800


def _committed(store: ObjectStore, day) -> list[str]:  # day: a datetime
    """The files the day's _SUCCESS.json lists: what a reader of the output reads."""
    output = SPEC.batch_inference.output_prefix
    [partition] = committed_partitions(store, SPEC.data.bucket, output, day.date(), day.date())
    return partition.files
