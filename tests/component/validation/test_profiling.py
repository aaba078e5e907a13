"""Profiling a trusted dataset into a starting suite that real Great Expectations accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
from loopline.cli import main
from loopline.data.reading import read_batch
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.validation.report import validate_table
from loopline.validation.suites import load_suite
from support.paths import PIPELINES, PROJECT_ROOT

DATA = load_spec(PIPELINES / "card_fraud.yaml").data


def validate(data: bytes, key: str, suite):
    return validate_table(read_batch(data, key, DATA.columns), key, suite)


def profile(tmp_path: Path, rows: int = 2000) -> Path:
    trusted = tmp_path / "trusted.parquet"
    trusted.write_bytes(encode(generate(rows, seed=30), "parquet"))
    output = tmp_path / "suite.json"
    assert run_profile(trusted, output) == 0
    return output


def run_profile(trusted: Path, output: Path) -> int:
    """`loopline suite profile card_fraud TRUSTED --output OUTPUT`, as a user types it."""
    return main(
        [
            "--project",
            str(PROJECT_ROOT),
            "suite",
            "profile",
            "card_fraud",
            str(trusted),
            "--output",
            str(output),
        ]
    )


def test_profiled_suite_passes_fresh_data_and_catches_bad_data(tmp_path: Path) -> None:
    suite = load_suite(profile(tmp_path))
    fresh = encode(generate(1000, seed=31), "parquet")
    assert validate(fresh, "f.parquet", suite).success

    table = generate(1000, seed=32)
    index = table.column_names.index("channel")
    bad = table.set_column(index, "channel", pc.replace_substring(table["channel"], "pos", "xx"))
    report = validate(encode(bad, "parquet"), "b.parquet", suite)
    assert not report.success
    assert any("channel" in reason for reason in report.reasons())


def test_profile_records_its_source_and_the_exact_columns(tmp_path: Path) -> None:
    document = json.loads(profile(tmp_path).read_text())
    assert document["meta"]["rows"] == 2000
    [columns] = [
        e for e in document["expectations"] if e["type"] == "expect_table_columns_to_match_set"
    ]
    assert columns["kwargs"]["column_set"] == DATA.column_names


def test_a_reviewed_suite_is_not_overwritten(tmp_path: Path, capsys) -> None:
    output = profile(tmp_path)
    output.write_text(output.read_text().replace("starting point", "REVIEWED"))
    assert run_profile(tmp_path / "trusted.parquet", output) == 1
    assert "exists; it may hold reviewed changes" in capsys.readouterr().out
    assert "REVIEWED" in output.read_text()


def test_ranges_are_widened_but_never_across_zero() -> None:
    from loopline.validation.profiling import widen

    assert widen(2.0, 10.0, 1.0) == (0.0, 18.0)  # never negative stays never negative
    assert widen(-10.0, -2.0, 1.0) == (-18.0, 0.0)  # never positive stays never positive
    assert widen(-1.0, 3.0, 1.0) == (-5.0, 7.0)  # both signs seen: widened both ways
    assert widen(20.0, 30.0, 1.0) == (10.0, 40.0)  # far from zero: plain widening


def test_an_impossible_negative_value_is_caught_and_the_review_note_says_why(
    tmp_path: Path,
) -> None:
    document = json.loads(profile(tmp_path).read_text())
    amount = next(
        e["kwargs"]
        for e in document["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "amount"
    )
    assert amount["min_value"] == 0
    [note] = [n for n in document["meta"]["widened_bounds"] if n.startswith("amount:")]
    assert note.endswith("(kept at zero: never negative here)")

    table = generate(1000, seed=33)
    index = table.column_names.index("amount")
    negative = table.set_column(index, "amount", pc.multiply(table["amount"], -1.0))
    suite = load_suite(tmp_path / "suite.json")
    report = validate(encode(negative, "parquet"), "n.parquet", suite)
    assert not report.success and any("amount" in reason for reason in report.reasons())
