"""Landing demo batches on a real S3-compatible server: formats, idempotency, conflicts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from loopline.demo.feed import (
    BatchRequest,
    FeedTarget,
    batch_key,
    land_batch,
    request_from_params,
    safe_batch_id,
)
from loopline.spec.sections import FileFormat
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectConflictError, ObjectStore, sha256_hex

TARGET = FeedTarget("card_fraud", "landing-test", "card_fraud/landing/")
WHEN = datetime(2026, 11, 23, 20, 5, tzinfo=UTC)


@pytest.fixture
def store(s3) -> ObjectStore:
    store = ObjectStore(s3.client())
    store.ensure_bucket(TARGET.bucket)
    return store


@pytest.mark.parametrize("file_format", list(FileFormat))
def test_lands_a_readable_file_in_each_format(store: ObjectStore, file_format) -> None:
    request = BatchRequest("run-1", rows=321, file_format=file_format, logical_date=WHEN)
    landed = land_batch(store, TARGET, request)
    assert landed.created
    assert landed.key == f"card_fraud/landing/dt=2026-11-23/run-1.{file_format.value}"
    data = store.get(TARGET.bucket, landed.key)
    assert sha256_hex(data) == landed.sha256
    table = decode(data, file_format)
    assert table.num_rows == 321
    assert "transaction_id" in table.column_names


def test_a_retry_lands_identical_bytes_once(store: ObjectStore) -> None:
    request = BatchRequest("run-2", rows=200, logical_date=WHEN)
    first = land_batch(store, TARGET, request)
    again = land_batch(store, TARGET, request)
    assert first.created and not again.created
    assert again.sha256 == first.sha256
    assert list(store.list_keys(TARGET.bucket, TARGET.landing_prefix)) == [first.key]


def test_different_bytes_for_a_landed_key_are_refused(store: ObjectStore) -> None:
    land_batch(store, TARGET, BatchRequest("run-3", rows=100, logical_date=WHEN))
    with pytest.raises(ObjectConflictError, match=r"run-3\.parquet already exists"):
        land_batch(store, TARGET, BatchRequest("run-3", rows=100, seed=99, logical_date=WHEN))


def test_run_ids_become_safe_keys() -> None:
    batch_id = safe_batch_id("manual__2026-11-23T20:00:00+00:00")
    assert batch_id == "manual__2026-11-23T20_00_00_00_00"
    request = BatchRequest(batch_id, rows=1, logical_date=WHEN)
    assert batch_key(TARGET, request).startswith("card_fraud/landing/dt=2026-11-23/manual__")


def test_params_are_checked_by_name() -> None:
    with pytest.raises(ValueError, match="unknown batch parameters \\['rowz'\\]"):
        request_from_params(
            {"rowz": 5}, batch_id="b", base_seed=1, fraud_rate=0.1, logical_date=None
        )
    with pytest.raises(
        ValueError,
        match="drifted_features input should be less than or equal to 30",
    ):
        request_from_params(
            {"rows": 5, "drifted_features": 40},
            batch_id="b",
            base_seed=1,
            fraud_rate=0.1,
            logical_date=None,
        )
