"""The validation library with real Great Expectations: every kind of bad batch gets a reason.

The gate tests route these verdicts on S3; the DAG test runs every bad batch through Airflow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from loopline.data.reading import UnreadableFile, read_batch
from loopline.demo.card_transactions import DriftKnobs, generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.validation.report import unreadable_report, validate_table
from loopline.validation.suites import SuiteError, load_suite
from support.bad_batches import BAD_BATCHES, BadBatch, good_table
from support.paths import PIPELINES, PROJECT_ROOT

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
SUITE_FILE = PROJECT_ROOT / "include" / "expectations" / "card_fraud.json"


@pytest.fixture(scope="module")
def suite():
    return load_suite(SUITE_FILE)


def check(data: bytes, key: str, suite):
    """What the gate does with a landed file: an unreadable one is a failed report."""
    try:
        table = read_batch(data, key, SPEC.data.columns)
    except UnreadableFile as exc:
        return unreadable_report(key, suite, exc)
    return validate_table(table, key, suite)


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


@pytest.mark.parametrize("bad", BAD_BATCHES, ids=lambda bad: bad.name)
def test_a_bad_batch_fails_with_a_readable_reason(suite, bad: BadBatch) -> None:
    report = check(bad.make(), bad.file_name, suite)
    reason = bad.reason
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
