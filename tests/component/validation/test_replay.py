"""Replaying quarantined files on a real S3 server with the real gate: a file quarantined by a
suite since fixed goes back to its landing key (verified, its reports archived), passes the
fixed suite, and everything the replay refused or did is recorded; rows already validated are
reported by the gate's replay check, never validated twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopline.demo.card_transactions import generate
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.validation.gate import RowSplitPolicy, validate_and_route
from loopline.validation.replay import replay_quarantined, report_archive_key
from loopline.validation.suites import load_suite
from support.paths import PROJECT_ROOT
from support.validated_data import DEMO, everything

DATA = DEMO.data
BUCKET = DATA.bucket
DAY = "dt=2026-11-23/"
LANDED = f"{DATA.landing_prefix}{DAY}c.parquet"
QUARANTINED = f"{DATA.quarantine_prefix}{DAY}c.parquet"


@pytest.fixture(scope="module")
def strict_suite(tmp_path_factory: pytest.TempPathFactory):
    """The demo suite with a row-count limit no batch meets: the suite before its fix."""
    document = json.loads((PROJECT_ROOT / "include/expectations/card_fraud.json").read_text())
    for expectation in document["expectations"]:
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["kwargs"]["max_value"] = 10
    path = Path(tmp_path_factory.mktemp("suites")) / "card_fraud.json"
    path.write_text(json.dumps(document))
    return load_suite(path)


def quarantine(store: ObjectStore, suite, key: str = LANDED, seed: int = 3) -> str:
    """Land 100 demo rows at `key` and let the gate quarantine them; their sha256."""
    data = encode(generate(100, seed=seed, batch_id=f"b{seed}"), "parquet")
    store.put_new(BUCKET, key, data)
    assert not validate_and_route(store, DATA, suite, key).passed
    return sha256_hex(data)


def run(name: str = "replay-1") -> RunContext:
    return RunContext(DEMO.name, name)


def replay_records(store: ObjectStore) -> list:
    return list(RecordStore(store, BUCKET).records(DEMO.name, RecordStage.REPLAY))


def test_a_file_quarantined_by_a_fixed_suite_goes_back_and_passes(
    store, suite, strict_suite
) -> None:
    checksum = quarantine(store, strict_suite)
    report = store.get(BUCKET, QUARANTINED + ".report.json")

    replay = replay_quarantined(store, DEMO, [QUARANTINED], run(), validate_with=suite)

    [requeued] = replay.requeued
    assert requeued.landing_key == LANDED and requeued.sha256 == checksum
    assert requeued.validation is not None and requeued.validation["disposition"] == "validated"
    # Nothing left in quarantine; the first verdict kept, by content, in the archive.
    archived = report_archive_key(DATA, QUARANTINED, ".report.json", sha256_hex(report))
    assert archived in requeued.archived_reports
    assert store.get(BUCKET, archived) == report
    assert [k for k in everything(store) if "quarantine/" in k and "reports" not in k] == []
    assert sha256_hex(store.get(BUCKET, f"{DATA.validated_prefix}{DAY}c.parquet")) == checksum
    [record] = replay_records(store)
    assert record.verdict == "requeued" and record.payload["landing_key"] == LANDED
    assert record.payload["validation"]["disposition"] == "validated"
    validation = list(RecordStore(store, BUCKET).records(DEMO.name, RecordStage.VALIDATION))
    assert [r.verdict for r in validation if r.run_id == "replay-1"] == ["validated"]


def test_rows_already_validated_are_reported_by_the_gate_not_validated_twice(
    store, suite, strict_suite
) -> None:
    rows = encode(generate(100, seed=3, batch_id="b3"), "parquet")
    store.put_new(BUCKET, f"{DATA.landing_prefix}{DAY}first.parquet", rows)
    assert validate_and_route(store, DATA, suite, f"{DATA.landing_prefix}{DAY}first.parquet").passed
    quarantine(store, strict_suite)  # the same rows again, quarantined by the strict suite

    [requeued] = replay_quarantined(store, DEMO, [QUARANTINED], run(), validate_with=suite).files

    assert requeued.outcome == "requeued" and requeued.validation is not None
    assert requeued.validation["disposition"] == "quarantined"
    assert "duplicate_keys: 100 row(s) have a key already validated" in " ".join(
        requeued.validation["reasons"]
    )
    validated = [k for k in everything(store) if k.startswith(DATA.validated_prefix)]
    assert validated == [f"{DATA.validated_prefix}{DAY}first.parquet"]


def test_a_prefix_requeues_every_file_under_it_and_the_next_validation_finds_them(
    store, strict_suite
) -> None:
    quarantine(store, strict_suite)
    quarantine(store, strict_suite, key=f"{DATA.landing_prefix}{DAY}d.parquet", seed=4)

    replay = replay_quarantined(
        store, DEMO, [f"s3://{BUCKET}/{DATA.quarantine_prefix}{DAY}"], run()
    )

    assert sorted(f.landing_key for f in replay.requeued) == [
        f"{DATA.landing_prefix}{DAY}c.parquet",
        f"{DATA.landing_prefix}{DAY}d.parquet",
    ]
    assert replay.refused == []
    landed = sorted(store.list_keys(BUCKET, DATA.landing_prefix))
    assert landed == sorted(f.landing_key for f in replay.requeued)  # reports did not go there
    assert sorted(r.verdict for r in replay_records(store)) == ["requeued", "requeued"]


def test_refusals_name_the_key_and_why_and_move_nothing(store, suite, strict_suite) -> None:
    quarantine(store, strict_suite)
    # Another file landed under the same key since: it must never be overwritten.
    store.put_new(BUCKET, LANDED, b"newer bytes")
    before = everything(store)

    replay = replay_quarantined(
        store,
        DEMO,
        [
            QUARANTINED,
            QUARANTINED + ".report.json",
            f"{DATA.validated_prefix}{DAY}x.parquet",
            f"{DATA.quarantine_prefix}dt=2020-01-01/",
            "s3://elsewhere/card_fraud/quarantine/a.csv",
        ],
        run(),
    )

    reasons = {f.source: f.reason for f in replay.refused}
    assert replay.requeued == [] and len(reasons) == 5
    assert reasons[QUARANTINED].startswith(f"would overwrite s3://{BUCKET}/{LANDED}")
    assert "a report beside a quarantined file" in reasons[QUARANTINED + ".report.json"]
    assert (
        "outside the pipeline's quarantine prefix"
        in reasons[f"{DATA.validated_prefix}{DAY}x.parquet"]
    )
    assert reasons[f"{DATA.quarantine_prefix}dt=2020-01-01/"].startswith("not in quarantine")
    assert "in bucket 'elsewhere'" in reasons["s3://elsewhere/card_fraud/quarantine/a.csv"]
    # nothing moved, no report archived: only the refusals' records were written
    assert [k for k in everything(store) if not k.startswith("records/")] == before
    assert [r.verdict for r in replay_records(store)] == ["refused"] * 5


def test_the_original_of_a_split_file_is_refused(store, suite) -> None:
    table = generate(200, seed=9, batch_id="s")
    amounts = table["amount"].to_pylist()
    amounts[0] = None  # one bad row: the file is split, its good rows validated
    bad = table.set_column(table.schema.get_field_index("amount"), "amount", [amounts])
    store.put_new(BUCKET, LANDED, encode(bad, "parquet"))
    split = validate_and_route(store, DATA, suite, LANDED, row_split=RowSplitPolicy(0.1))
    assert split.split

    [refused] = replay_quarantined(store, DEMO, [QUARANTINED], run()).files

    assert refused.outcome == "refused"
    assert refused.reason.startswith("the original of a split file")
    assert store.head(BUCKET, QUARANTINED) is not None
