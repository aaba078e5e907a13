"""Debug bundles and spec pins on a real S3 server, and `loopline debug` reading them back."""

from __future__ import annotations

import pytest
from loopline.cli import main
from loopline.demo.card_transactions import generate
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.records.debug import (
    MAX_BUNDLE_BYTES,
    DebugBundle,
    LogLocation,
    SpecPinConflict,
    error_info,
    pin_spec,
    pinned_spec,
    read_bundles,
    sample_of_object,
    spec_version,
    write_bundle,
)
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore
from support.paths import PIPELINES, PROJECT_ROOT

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
RUN = "manual__2026-12-07T01:02:03.456789+00:00"  # as the UI shows it


@pytest.fixture
def store(s3) -> ObjectStore:
    store = ObjectStore(s3.client())
    store.ensure_bucket("loopline")
    return store


def failed_bundle(**changes) -> DebugBundle:
    try:
        raise ValueError("column 'amount' is text")
    except ValueError as error:
        info = error_info(error)
    fields = {
        "pipeline": "card_fraud",
        "run_id": RUN,
        "dag_id": "card_fraud.validate",
        "task_id": "verdict",
        "try_number": 1,
        "error": info,
        "arguments": {"keys": [["card_fraud/landing/dt=2026-12-07/a.csv"]]},
        "log": LogLocation(ui_url="http://localhost:8080/dags/x"),
    }
    return DebugBundle(**{**fields, **changes})


def test_the_first_task_pins_the_spec_and_another_version_is_refused(store) -> None:
    planned = spec_version("a" * 64, SPEC)
    args = ("loopline", "card_fraud", "card_fraud.train", RUN)
    assert pin_spec(store, *args, planned) == planned
    assert pin_spec(store, *args, planned) == planned  # the next task, same version: passes
    with pytest.raises(SpecPinConflict, match=r"started on spec version aaaaaaaaaaaa .* now bbb"):
        pin_spec(store, *args, spec_version("b" * 64, SPEC))
    assert pinned_spec(store, *args) == planned
    assert pinned_spec(store, "loopline", "card_fraud", "card_fraud.train", "other") is None


def test_a_bundle_too_large_drops_its_sample_first_and_says_so(store) -> None:
    huge = {f"row{i}": "x" * 1900 for i in range(20)}
    rows = [huge] * 20  # bounded() keeps 20 x 20 x 1,900 characters: over the limit
    from loopline.records.debug import bounded

    uri = write_bundle(store, "loopline", failed_bundle(sample={"rows": bounded(rows)}))
    [bundle] = read_bundles(store, "loopline", "card_fraud", RUN)
    assert uri.startswith("s3://loopline/debug/card_fraud/manual__2026-12-07T01_02_03")
    assert bundle.cut == ["sample"] and bundle.sample == {}
    assert bundle.error.message == "column 'amount' is text"  # the error is never dropped
    key = uri.removeprefix("s3://loopline/")
    assert len(store.get("loopline", key)) <= MAX_BUNDLE_BYTES


def test_a_sample_shows_the_first_rows_or_the_first_bytes_of_a_broken_file(store) -> None:
    table = generate(50, seed=1)
    store.put_new("loopline", "q/good.parquet", encode(table, "parquet"))
    store.put_new("loopline", "q/broken.parquet", b"PAR1 not really parquet")
    rows = sample_of_object(store, "loopline", "q/good.parquet")
    assert len(rows) == 3 and rows[0]["transaction_id"] == table["transaction_id"][0].as_py()
    broken = sample_of_object(store, "loopline", "q/broken.parquet")
    assert broken["first_bytes"] == "PAR1 not really parquet" and broken["undecodable"]
    assert sample_of_object(store, "loopline", "q/none.csv") == "s3://loopline/q/none.csv is gone"


def test_loopline_debug_prints_a_run_s_bundles_from_the_run_id_the_ui_shows(
    store, s3, monkeypatch, capsys
) -> None:
    for name, value in s3.cli_environment().items():
        monkeypatch.setenv(name, value)
    uri = write_bundle(store, "loopline", failed_bundle(sample={"first_bytes": "a;b;c"}))
    run = RunContext("card_fraud", RUN, "card_fraud.validate", "verdict", 1)
    reasons = ["ValueError: column 'amount' is text"]
    failure = run.record(
        RecordStage.FAILURE,
        "failed",
        subject="verdict.try1",
        reasons=reasons,
        payload={"bundle": uri},
    )
    RecordStore(store, "loopline").write(failure)
    project = ("--project", str(PROJECT_ROOT))

    assert main([*project, "debug", "card_fraud", RUN]) == 0
    out = capsys.readouterr().out
    assert f"card_fraud.validate {RUN}: verdict try 1 failed" in out
    assert "error: ValueError: column 'amount' is text" in out
    assert '"first_bytes": "a;b;c"' in out and "http://localhost:8080/dags/x" in out

    assert main([*project, "debug", "card_fraud"]) == 0  # no run: the latest failures
    listed = capsys.readouterr().out
    assert RUN in listed and "verdict.try1  failed: ValueError" in listed

    assert main([*project, "debug", "card_fraud", "manual__nope"]) == 1
    assert "no debug bundle for run 'manual__nope'" in capsys.readouterr().out
