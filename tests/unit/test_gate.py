"""The gate on a real S3 server: every landed file ends in exactly one place, byte-identical,
and a retry after a crash at any point neither loses nor duplicates it."""

from __future__ import annotations

import json

import pytest
from conftest import PIPELINES, PROJECT_ROOT
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectConflictError, ObjectStore, sha256_hex
from loopline.validation.gate import validate_and_route
from loopline.validation.suites import load_suite

DATA = load_spec(PIPELINES / "card_fraud.yaml").data
BUCKET = DATA.bucket
GOOD_KEY = f"{DATA.landing_prefix}dt=2026-11-23/good.parquet"
BAD_KEY = f"{DATA.landing_prefix}dt=2026-11-23/bad.csv"


@pytest.fixture(scope="module")
def suite():
    return load_suite(PROJECT_ROOT / "include" / "expectations" / "card_fraud.json")


@pytest.fixture
def store(s3) -> ObjectStore:
    store = ObjectStore(s3.client())
    store.ensure_bucket(BUCKET)
    return store


def land(store: ObjectStore, key: str, data: bytes) -> str:
    store.put_new(BUCKET, key, data)
    return sha256_hex(data)


def everything(store: ObjectStore) -> list[str]:
    return sorted(store.list_keys(BUCKET))


def test_a_good_file_moves_to_validated_byte_identical(store, suite) -> None:
    checksum = land(store, GOOD_KEY, encode(generate(500, seed=1), "parquet"))
    result = validate_and_route(store, DATA, suite, GOOD_KEY)
    assert result.passed and result.rows == 500
    assert everything(store) == ["card_fraud/validated/dt=2026-11-23/good.parquet"]
    assert sha256_hex(store.get(BUCKET, result.destination)) == checksum


def test_a_bad_file_is_quarantined_with_its_report(store, suite) -> None:
    table = generate(50, seed=2).drop_columns(["amount"])
    checksum = land(store, BAD_KEY, encode(table, "csv"))
    result = validate_and_route(store, DATA, suite, BAD_KEY)
    assert not result.passed
    quarantined = "card_fraud/quarantine/dt=2026-11-23/bad.csv"
    assert everything(store) == [
        quarantined,
        quarantined + ".report.html",
        quarantined + ".report.json",
    ]
    assert sha256_hex(store.get(BUCKET, quarantined)) == checksum
    report = json.loads(store.get(BUCKET, quarantined + ".report.json"))
    assert report["success"] is False
    assert any("expect_table_columns_to_match_set" in reason for reason in report["reasons"])
    data_docs = store.get(BUCKET, quarantined + ".report.html").decode()
    assert "Expectation Validation Result" in data_docs and "card_fraud" in data_docs


def test_retry_after_copy_before_delete_keeps_one_copy(store, suite) -> None:
    data = encode(generate(100, seed=3), "parquet")
    land(store, GOOD_KEY, data)
    # The crash: the copy reached validated/, the landing file was never deleted.
    store.put_new(BUCKET, "card_fraud/validated/dt=2026-11-23/good.parquet", data)
    result = validate_and_route(store, DATA, suite, GOOD_KEY)
    assert result.passed
    assert everything(store) == ["card_fraud/validated/dt=2026-11-23/good.parquet"]


def test_retry_after_the_move_reports_where_the_file_went(store, suite) -> None:
    land(store, GOOD_KEY, encode(generate(100, seed=4), "parquet"))
    first = validate_and_route(store, DATA, suite, GOOD_KEY)
    again = validate_and_route(store, DATA, suite, GOOD_KEY)
    assert again.already_routed and again.destination == first.destination
    assert everything(store) == [first.destination]


def test_a_destination_with_other_bytes_is_never_overwritten(store, suite) -> None:
    land(store, GOOD_KEY, encode(generate(100, seed=5), "parquet"))
    other = encode(generate(100, seed=6), "parquet")
    store.put_new(BUCKET, "card_fraud/validated/dt=2026-11-23/good.parquet", other)
    with pytest.raises(ObjectConflictError, match="the source is kept"):
        validate_and_route(store, DATA, suite, GOOD_KEY)
    assert GOOD_KEY in everything(store)
    validated = store.get(BUCKET, "card_fraud/validated/dt=2026-11-23/good.parquet")
    assert sha256_hex(validated) == sha256_hex(other)
