"""The validation library with real Great Expectations: every kind of bad batch gets a reason.

Routing on S3 and the DAG come in later slices; these tests pin the verdicts they will route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import PIPELINES, PROJECT_ROOT
from loopline.demo.card_transactions import DriftKnobs, generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.validation.report import validate_object
from loopline.validation.suites import SuiteError, load_suite

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
SUITE_FILE = PROJECT_ROOT / "include" / "expectations" / "card_fraud.json"


@pytest.fixture(scope="module")
def suite():
    return load_suite(SUITE_FILE)


def good_table(rows: int = 300) -> pa.Table:
    return generate(rows, seed=21)


def check(data: bytes, key: str, suite):
    return validate_object(data, key, SPEC.data.columns, suite)


@pytest.mark.parametrize("file_format", ["parquet", "csv", "jsonl"])
def test_a_good_batch_passes_in_every_format(suite, file_format: str) -> None:
    report = check(encode(good_table(), file_format), f"b.{file_format}", suite)
    assert report.success, report.reasons()
    assert report.rows == 300 and report.failures == []


def test_new_categories_are_a_warning_not_a_failure(suite) -> None:
    table = generate(1000, seed=4, drift=DriftKnobs(new_category_share=0.2))
    report = check(encode(table, "parquet"), "b.parquet", suite)
    assert report.success
    [warning] = report.warnings
    assert warning.column == "merchant_category" and warning.unexpected_count > 100


def replace_column(name: str, values: Callable[[pa.Table], pa.Array]):
    def change(table: pa.Table) -> pa.Table:
        return table.set_column(table.column_names.index(name), name, values(table))

    return change


def as_bytes(change: Callable[[pa.Table], pa.Table], file_format: str = "parquet"):
    return lambda: encode(change(good_table()), file_format)


def raw(data: bytes):
    return lambda: data


def csv_with_semicolons() -> bytes:
    text = encode(good_table(), "csv").decode()
    return text.replace(",", ";").encode()


def latin1_csv() -> bytes:
    table = replace_column("channel", lambda t: pa.array(["café"] * t.num_rows))(good_table())
    return encode(table, "csv").decode().encode("latin-1")


BAD = [
    pytest.param(raw(b""), "b.parquet", r"^empty: the object is empty \(0 bytes\)", id="0-byte"),
    pytest.param(
        raw(b"transaction_id,event_time\n"),
        "b.csv",
        r"^empty: the file holds no rows",
        id="header-only",
    ),
    pytest.param(
        lambda: encode(good_table(), "parquet")[:-100],
        "b.parquet",
        r"^corrupt: cannot parse as parquet",
        id="truncated-parquet",
    ),
    pytest.param(
        csv_with_semicolons, "b.csv", r"expect_table_columns_to_match_set", id="wrong-delimiter"
    ),
    pytest.param(
        latin1_csv, "b.csv", r"^encoding: not UTF-8: byte 0xe9 at offset \d+", id="not-utf8"
    ),
    pytest.param(
        as_bytes(lambda t: t.drop_columns(["amount"])),
        "b.parquet",
        r"expect_table_columns_to_match_set",
        id="missing-column",
    ),
    pytest.param(
        as_bytes(lambda t: t.append_column("surprise", pa.array([1] * t.num_rows))),
        "b.parquet",
        r"expect_table_columns_to_match_set",
        id="extra-column",
    ),
    pytest.param(
        as_bytes(replace_column("amount", lambda t: pa.array(["lots"] * t.num_rows)), "csv"),
        "b.csv",
        r"^types: wrong column types: amount: expected float32, got string",
        id="wrong-type",
    ),
    pytest.param(
        as_bytes(
            replace_column(
                "channel", lambda t: pa.array([None] + ["pos"] * (t.num_rows - 1), pa.string())
            )
        ),
        "b.parquet",
        r"expect_column_values_to_not_be_null on channel: 1 unexpected",
        id="null-not-allowed",
    ),
    pytest.param(
        as_bytes(replace_column("amount", lambda t: pc.multiply(t["amount"], -1))),
        "b.parquet",
        r"expect_column_values_to_be_between on amount: 300 unexpected",
        id="out-of-range",
    ),
    pytest.param(
        as_bytes(
            replace_column(
                "transaction_id", lambda t: pa.array(["dup"] * 2 + [f"id{i}" for i in range(298)])
            )
        ),
        "b.parquet",
        r"expect_column_values_to_be_unique on transaction_id: 2 unexpected .*'dup'",
        id="duplicate-keys",
    ),
    pytest.param(
        lambda: encode(good_table(), "csv"),
        "b.parquet",
        r"^format: the name says parquet but the bytes are csv",
        id="extension-lies",
    ),
    pytest.param(
        lambda: encode(good_table(), "parquet"),
        "b.txt",
        r"^format: cannot tell the format of 'b.txt'",
        id="unknown-extension",
    ),
]


@pytest.mark.parametrize(("make", "key", "reason"), BAD)
def test_a_bad_batch_fails_with_a_readable_reason(suite, make, key: str, reason: str) -> None:
    report = check(make(), key, suite)
    assert not report.success
    assert any(re.search(reason, r) for r in report.reasons()), report.reasons()
    assert json.loads(report.to_json())["reasons"] == report.reasons()


def test_an_unknown_expectation_type_is_named_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "name": "s",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
                    {"type": "expect_colum_values_to_be_unique", "kwargs": {"column": "a"}},
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "a"}},
                ],
            }
        )
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"2 problem(s) in {path}")
    assert "expectations[1] (expect_colum_values_to_be_unique): unknown expectation type" in message
    assert "expectations[2] (expect_column_values_to_not_be_null):" in message


def test_the_suite_checks_exactly_the_spec_columns(suite) -> None:
    [columns] = [
        e for e in suite.expectations if e.expectation_type == "expect_table_columns_to_match_set"
    ]
    assert columns.column_set == SPEC.data.column_names
