"""The gate on a real S3 server: every landed file ends in exactly one place, byte-identical,
and a retry after a crash at any point neither loses nor duplicates it."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from loopline.data.profile_store import ProfileStore
from loopline.data.reading import read_batch
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import decode, encode
from loopline.storage.objects import ObjectConflictError, ObjectStore, sha256_hex
from loopline.validation.gate import RowSplitPolicy, validate_and_route
from loopline.validation.report import validate_table
from loopline.validation.split import REASON_COLUMN
from support.paths import PIPELINES
from support.validated_data import everything

DATA = load_spec(PIPELINES / "card_fraud.yaml").data
BUCKET = DATA.bucket
GOOD_KEY = f"{DATA.landing_prefix}dt=2026-11-23/good.parquet"
BAD_KEY = f"{DATA.landing_prefix}dt=2026-11-23/bad.csv"


def land(store: ObjectStore, key: str, data: bytes) -> str:
    store.put_new(BUCKET, key, data)
    return sha256_hex(data)


VALIDATED = "card_fraud/validated/dt=2026-11-23/good.parquet"


def test_canonical_parquet_moves_to_validated_byte_identical(store, suite) -> None:
    """Parquet already in the spec's columns and types is the validated object as it landed:
    one verified move, no second copy."""
    checksum = land(store, GOOD_KEY, encode(generate(500, seed=1), "parquet"))
    result = validate_and_route(store, DATA, suite, GOOD_KEY)
    assert result.passed and result.rows == 500
    assert everything(store) == [VALIDATED]
    profile = ProfileStore(store, DATA).read(VALIDATED)  # profiled once, for drift audits
    assert profile.rows == 500 and profile.sample.num_rows == 500
    assert (result.destination, result.archive_key) == (VALIDATED, VALIDATED)
    assert sha256_hex(store.get(BUCKET, VALIDATED)) == checksum == result.sha256


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_any_landed_format_is_validated_as_parquet_in_the_spec_types(
    store, suite, file_format: str
) -> None:
    table = generate(300, seed=11)
    # float64 where the spec says float32: the gate casts, the validated zone holds float32.
    wide = table.set_column(
        table.schema.get_field_index("amount"), "amount", table["amount"].cast(pa.float64())
    )
    key = f"{DATA.landing_prefix}dt=2026-11-23/batch.{file_format}"
    checksum = land(store, key, encode(wide, file_format))

    result = validate_and_route(store, DATA, suite, key)

    assert result.passed
    assert result.destination == f"card_fraud/validated/dt=2026-11-23/batch.{file_format}.parquet"
    validated = decode(store.get(BUCKET, result.destination), "parquet")
    assert validated.schema.field("amount").type == pa.float32()
    assert validated.column_names == DATA.column_names and validated.num_rows == 300
    assert sha256_hex(store.get(BUCKET, result.archive_key)) == checksum


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
    store.put_new(BUCKET, VALIDATED, data)
    result = validate_and_route(store, DATA, suite, GOOD_KEY)
    assert result.passed
    assert everything(store) == [VALIDATED]


def test_a_retry_after_writing_the_parquet_archives_once(store, suite) -> None:
    key = f"{DATA.landing_prefix}dt=2026-11-23/good.csv"
    data = encode(generate(100, seed=3), "csv")
    land(store, key, data)
    first = validate_and_route(store, DATA, suite, key)
    # The crash: the Parquet and the archive copy were written, the landed file not deleted.
    store.put_new(BUCKET, key, data)
    again = validate_and_route(store, DATA, suite, key)
    assert again.passed and (again.destination, again.archive_key) == (
        first.destination,
        first.archive_key,
    )
    assert everything(store) == [first.archive_key, first.destination]


def test_retry_after_the_move_reports_where_the_file_went(store, suite) -> None:
    land(store, GOOD_KEY, encode(generate(100, seed=4), "parquet"))
    first = validate_and_route(store, DATA, suite, GOOD_KEY)
    again = validate_and_route(store, DATA, suite, GOOD_KEY)
    assert again.already_routed and again.destination == first.destination
    assert again.archive_key == first.archive_key and again.sha256 == first.sha256
    assert everything(store) == [VALIDATED]


def test_a_destination_with_other_bytes_is_never_overwritten(store, suite) -> None:
    land(store, GOOD_KEY, encode(generate(100, seed=5), "parquet"))
    other = encode(generate(100, seed=6), "parquet")
    store.put_new(BUCKET, "card_fraud/validated/dt=2026-11-23/good.parquet", other)
    with pytest.raises(ObjectConflictError, match="the source is kept"):
        validate_and_route(store, DATA, suite, GOOD_KEY)
    assert GOOD_KEY in everything(store)
    validated = store.get(BUCKET, "card_fraud/validated/dt=2026-11-23/good.parquet")
    assert sha256_hex(validated) == sha256_hex(other)


# Row-level split (spec: validation.row_split).

SPLIT = RowSplitPolicy(max_rejected_share=0.1)
SPLIT_KEY = f"{DATA.landing_prefix}dt=2026-11-23/mixed.parquet"
SPLIT_VALID = "card_fraud/validated/dt=2026-11-23/mixed.parquet"
SPLIT_QUARANTINE = "card_fraud/quarantine/dt=2026-11-23/mixed.parquet"


def with_bad_rows(rows: int, seed: int) -> pa.Table:
    """A batch whose only faults are in rows 3 (negative amount), 7 (null amount) and 4-5
    (one transaction id twice), and an unseen merchant category in row 9 (a warning)."""
    table = generate(rows, seed=seed)
    amounts = table.column("amount").to_pylist()
    amounts[3], amounts[7] = -5.0, None
    ids = table.column("transaction_id").to_pylist()
    ids[5] = ids[4]
    categories = table.column("merchant_category").to_pylist()
    categories[9] = "casino"
    for name, values in (("amount", amounts), ("transaction_id", ids)):
        column = pa.array(values, table.schema.field(name).type)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    index = table.schema.get_field_index("merchant_category")
    return table.set_column(index, "merchant_category", pa.array(categories))


def test_row_split_moves_good_rows_on_and_quarantines_the_rest(store, suite) -> None:
    table = with_bad_rows(500, seed=10)
    checksum = land(store, SPLIT_KEY, encode(table, "parquet"))
    result = validate_and_route(store, DATA, suite, SPLIT_KEY, row_split=SPLIT)
    assert result.split and result.passed
    assert (result.rows, result.accepted_rows, result.rejected_rows) == (500, 496, 4)
    assert everything(store) == [
        SPLIT_QUARANTINE,
        SPLIT_QUARANTINE + ".rejected.parquet",
        SPLIT_QUARANTINE + ".report.html",
        SPLIT_QUARANTINE + ".report.json",
        SPLIT_VALID,
    ]
    # Nothing lost: the original is kept byte-identical, and the rows add up exactly.
    assert sha256_hex(store.get(BUCKET, SPLIT_QUARANTINE)) == checksum
    accepted = decode(store.get(BUCKET, SPLIT_VALID), "parquet")
    rejected = decode(store.get(BUCKET, SPLIT_QUARANTINE + ".rejected.parquet"), "parquet")
    bad_ids = {table.column("transaction_id")[i].as_py() for i in (3, 4, 7)}
    assert set(rejected.column("transaction_id").to_pylist()) == bad_ids
    assert sorted(
        accepted.column("transaction_id").to_pylist()
        + rejected.column("transaction_id").to_pylist()
    ) == sorted(table.column("transaction_id").to_pylist())
    amounts, why = rejected["amount"].to_pylist(), rejected[REASON_COLUMN].to_pylist()
    reasons = dict(zip(amounts, why, strict=True))
    assert reasons[-5.0] == ["expect_column_values_to_be_between(amount)"]
    assert reasons[None] == ["expect_column_values_to_not_be_null(amount)"]
    # The unseen category is only a warning: its row moved on.
    assert "casino" in accepted.column("merchant_category").to_pylist()
    # What moved on passes the whole suite.
    assert validate_table(accepted, SPLIT_VALID, suite).success
    report = json.loads(store.get(BUCKET, SPLIT_QUARANTINE + ".report.json"))
    assert report["disposition"] == "split"
    assert report["accepted_rows"] + report["rejected_rows"] == report["rows"] == 500


def test_row_split_of_a_csv_validates_its_good_rows_as_parquet(store, suite) -> None:
    key = f"{DATA.landing_prefix}dt=2026-11-23/mixed.csv"
    land(store, key, encode(with_bad_rows(200, seed=11), "csv"))
    result = validate_and_route(store, DATA, suite, key, row_split=SPLIT)
    assert result.split and result.accepted_rows == 196
    assert result.destination.endswith("mixed.csv.parquet")
    accepted = read_batch(store.get(BUCKET, result.destination), result.destination, DATA.columns)
    assert accepted.num_rows == 196 and validate_table(accepted, key, suite).success


def test_too_many_bad_rows_quarantine_the_whole_file(store, suite) -> None:
    checksum = land(store, SPLIT_KEY, encode(with_bad_rows(30, seed=12), "parquet"))
    result = validate_and_route(store, DATA, suite, SPLIT_KEY, row_split=SPLIT)
    assert not result.passed and result.destination == SPLIT_QUARANTINE
    assert any("4 of 30 rows (13.3%)" in reason for reason in result.reasons)
    assert SPLIT_VALID not in everything(store)
    assert sha256_hex(store.get(BUCKET, SPLIT_QUARANTINE)) == checksum


def test_a_table_level_failure_is_never_split(store, suite) -> None:
    table = with_bad_rows(500, seed=13).drop_columns(["channel"])
    land(store, SPLIT_KEY, encode(table, "parquet"))
    result = validate_and_route(store, DATA, suite, SPLIT_KEY, row_split=SPLIT)
    assert not result.passed
    assert any("row split not possible" in reason for reason in result.reasons)
    assert [key for key in everything(store) if key.startswith(DATA.validated_prefix)] == []


def test_a_split_retried_after_a_crash_writes_nothing_twice(store, suite, monkeypatch) -> None:
    checksum = land(store, SPLIT_KEY, encode(with_bad_rows(500, seed=14), "parquet"))

    def crash(*args, **kwargs):
        raise ConnectionError("worker lost before the original moved")

    with monkeypatch.context() as patch:
        patch.setattr(store, "move_verified", crash)
        with pytest.raises(ConnectionError):
            validate_and_route(store, DATA, suite, SPLIT_KEY, row_split=SPLIT)
    assert SPLIT_KEY in everything(store) and SPLIT_VALID in everything(store)
    first_valid = sha256_hex(store.get(BUCKET, SPLIT_VALID))
    retried = validate_and_route(store, DATA, suite, SPLIT_KEY, row_split=SPLIT)
    again = validate_and_route(store, DATA, suite, SPLIT_KEY, row_split=SPLIT)
    assert retried.split and (retried.accepted_rows, retried.rejected_rows) == (496, 4)
    assert again.already_routed and again.split and again.rejected_rows == 4
    assert sha256_hex(store.get(BUCKET, SPLIT_VALID)) == first_valid
    assert sha256_hex(store.get(BUCKET, SPLIT_QUARANTINE)) == checksum
    assert SPLIT_KEY not in everything(store)


def test_a_file_without_extension_is_read_as_the_spec_format(store, suite) -> None:
    key = f"{DATA.landing_prefix}dt=2026-11-23/part-00000"
    checksum = land(store, key, encode(generate(100, seed=15), DATA.format))
    result = validate_and_route(store, DATA, suite, key)
    assert result.passed and result.rows == 100
    assert result.destination.endswith("part-00000.parquet")
    assert sha256_hex(store.get(BUCKET, result.archive_key)) == checksum


def test_a_compressed_csv_is_validated_as_parquet_and_archived_compressed(store, suite) -> None:
    import gzip

    key = f"{DATA.landing_prefix}dt=2026-11-23/upstream.csv.gz"
    checksum = land(store, key, gzip.compress(encode(generate(250, seed=16), "csv")))
    result = validate_and_route(store, DATA, suite, key)
    assert result.passed and result.rows == 250
    assert result.destination == "card_fraud/validated/dt=2026-11-23/upstream.csv.gz.parquet"
    assert decode(store.get(BUCKET, result.destination), "parquet").num_rows == 250
    assert result.archive_key == "card_fraud/archive/dt=2026-11-23/upstream.csv.gz"
    assert sha256_hex(store.get(BUCKET, result.archive_key)) == checksum


# Replayed batches (spec: validation.duplicate_keys).

REPLAY_DAY = "dt=2026-11-24"  # an upstream retry lands the same rows a day later


def land_and_replay(store, suite, rows: int = 300) -> tuple:
    """A batch of 2026-11-23's transactions, landed and validated under that date."""
    from datetime import UTC, datetime

    original = generate(rows, seed=21, start=datetime(2026, 11, 23, 1, tzinfo=UTC))
    first_key = f"{DATA.landing_prefix}dt=2026-11-23/first.parquet"
    land(store, first_key, encode(original, "parquet"))
    first = validate_and_route(store, DATA, suite, first_key)
    return original, first


def test_a_replayed_batch_is_rejected_whole_with_its_keys(store, suite) -> None:
    original, first = land_and_replay(store, suite)
    replay_key = f"{DATA.landing_prefix}{REPLAY_DAY}/again.csv"
    checksum = land(store, replay_key, encode(original.slice(0, 120), "csv"))

    result = validate_and_route(store, DATA, suite, replay_key)

    assert first.passed and not result.passed
    assert result.destination == f"card_fraud/quarantine/{REPLAY_DAY}/again.csv"
    [reason] = result.reasons
    assert reason.startswith("duplicate_keys: 120 row(s) have a key already validated (")
    assert "validation.duplicate_keys" in reason
    assert sha256_hex(store.get(BUCKET, result.destination)) == checksum
    validated = [k for k in everything(store) if k.startswith("card_fraud/validated/")]
    assert validated == [first.destination]


def test_with_drop_only_the_new_rows_of_a_replay_move_on(store, suite) -> None:
    original, _ = land_and_replay(store, suite)
    newer = generate(80, seed=22, batch_id="newer")
    replay = pa.concat_tables([original.slice(0, 50), newer])
    replay_key = f"{DATA.landing_prefix}{REPLAY_DAY}/mixed.parquet"
    checksum = land(store, replay_key, encode(replay, "parquet"))

    result = validate_and_route(store, DATA, suite, replay_key, duplicate_keys="drop")

    assert result.passed and (result.accepted_rows, result.rejected_rows) == (80, 50)
    assert "50 row(s) have a key already validated" in result.reasons[0]
    moved_on = decode(store.get(BUCKET, result.destination), "parquet")
    assert sorted(moved_on["transaction_id"].to_pylist()) == sorted(
        newer["transaction_id"].to_pylist()
    )
    assert sha256_hex(store.get(BUCKET, result.archive_key)) == checksum  # nothing lost


def test_a_retried_gate_does_not_take_its_own_output_for_a_replay(store, suite) -> None:
    key = f"{DATA.landing_prefix}dt=2026-11-23/retried.csv"
    data = encode(generate(100, seed=23), "csv")
    land(store, key, data)
    first = validate_and_route(store, DATA, suite, key)
    store.put_new(BUCKET, key, data)  # the crash left the landed file: the task is retried
    again = validate_and_route(store, DATA, suite, key)
    assert first.passed and again.passed and again.destination == first.destination


def test_a_group_reads_each_validated_key_column_once_and_still_sees_replays(store, suite) -> None:
    """One task validating many files shares a KeyCache: the replay check reads each earlier
    object's keys once, and a replay within the same group is still caught."""
    from loopline.validation.replays import KeyCache

    cache, reads = KeyCache(), []
    get = store.get
    store.get = lambda bucket, key: reads.append(key) or get(bucket, key)  # count the reads
    batches = [generate(50, seed=30 + i, batch_id=f"g{i}") for i in range(4)]
    keys = [f"{DATA.landing_prefix}dt=2026-11-23/g{i}.parquet" for i in range(4)]
    for key, batch in zip(keys, batches, strict=True):
        land(store, key, encode(batch, "parquet"))
    replay_key = f"{DATA.landing_prefix}dt=2026-11-23/g9-replay.parquet"
    land(store, replay_key, encode(batches[1], "parquet"))

    results = [validate_and_route(store, DATA, suite, k, known_keys=cache) for k in keys]
    replay = validate_and_route(store, DATA, suite, replay_key, known_keys=cache)

    assert all(r.passed for r in results) and not replay.passed
    assert "duplicate_keys: 50 row(s)" in replay.reasons[0]
    validated_reads = [k for k in reads if k.startswith(DATA.validated_prefix)]
    # Each validated object was read once for its keys (without the cache: 0+1+2+3+4 = 10).
    assert sorted(validated_reads) == sorted(r.destination for r in results)
