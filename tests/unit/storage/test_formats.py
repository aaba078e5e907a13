"""The landed file formats: each round-trips the demo rows, and a key's extension names its
format, or the spec's format where the name has no extension (Spark's part files); an
extension that names no format is refused, never guessed."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopline.demo.card_transactions import generate
from loopline.storage.formats import (
    FileFormat,
    decode,
    encode,
    format_for_key,
    format_from_extension,
)

ROWS = generate(40, seed=1)


@pytest.mark.parametrize("file_format", list(FileFormat))
def test_every_format_round_trips_the_demo_rows(file_format: FileFormat) -> None:
    back = decode(encode(ROWS, file_format), file_format)

    assert back.column_names == ROWS.column_names
    assert back.column("transaction_id").to_pylist() == ROWS.column("transaction_id").to_pylist()
    assert back.column("amount").to_pylist() == pytest.approx(ROWS.column("amount").to_pylist())
    assert back.column("channel").to_pylist() == ROWS.column("channel").to_pylist()


def test_parquet_keeps_the_schema_and_dictionary_encodes_only_strings() -> None:
    data = encode(ROWS, FileFormat.PARQUET)

    assert decode(data, "parquet").equals(ROWS)
    chunks = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(4)}
    assert "RLE_DICTIONARY" in encodings["transaction_id"]
    assert "RLE_DICTIONARY" not in encodings["v1"]  # floats stay plain: smaller and faster


def test_bytes_that_are_not_the_format_fail_in_pyarrow() -> None:
    with pytest.raises(pa.ArrowInvalid):
        decode(b"id,amount\n1,2\n", "parquet")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("landing/dt=2026-11-30/a.parquet", FileFormat.PARQUET),
        ("landing/b.csv", FileFormat.CSV),
        ("landing/c.jsonl", FileFormat.JSONL),
    ],
)
def test_the_extension_names_the_format(key: str, expected: FileFormat) -> None:
    assert format_from_extension(key) is expected
    assert format_for_key(key, FileFormat.CSV) is expected  # the extension wins


def test_an_extension_that_names_no_format_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"'landing/a\.txt'.*\.parquet, \.csv, \.jsonl"):
        format_for_key("landing/a.txt", FileFormat.CSV)


def test_a_name_without_an_extension_takes_the_specs_format() -> None:
    assert format_for_key("scores/part-00000", FileFormat.JSONL) is FileFormat.JSONL
    # Only the name counts: a dot in a folder is not an extension.
    assert format_for_key("v1.2/part-00000", FileFormat.CSV) is FileFormat.CSV
    with pytest.raises(ValueError, match="cannot tell the format"):
        format_for_key("scores/part-00000")  # and no spec format to fall back on
