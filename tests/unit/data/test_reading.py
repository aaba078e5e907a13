"""Strict reading of a landed batch, compressed ones included, with reasons for bad bytes."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pytest
import zstandard
from loopline.data.reading import UnreadableFile, read_batch
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from support.paths import PIPELINES

COLUMNS = load_spec(PIPELINES / "card_fraud.yaml").data.columns
TABLE = generate(200, seed=4)


def zstd(data: bytes) -> bytes:
    sink = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(sink, closefd=False) as writer:
        writer.write(data)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("b.csv.gz", gzip.compress),
        ("b.jsonl.gz", gzip.compress),
        ("b.csv.zst", zstd),
        ("b.jsonl.zstd", zstd),
        ("b.parquet.gz", gzip.compress),
    ],
)
def test_compressed_batches_are_read_with_the_spec_types(name: str, compress) -> None:
    file_format = name.split(".")[1]
    table = read_batch(compress(encode(TABLE, file_format)), name, COLUMNS)
    assert table.num_rows == 200 and table.schema.field("amount").type == pa.float32()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("b.csv.gz", b"\x1f\x8b" + b"not really gzip", "not valid gzip"),
        ("b.csv.zst", b"\x28\xb5\x2f\xfd" + b"garbage" * 4, "not valid zstd"),
        ("b.csv.gz", encode(TABLE, "csv"), "the name says gzip but the bytes are not"),
        ("b.csv", gzip.compress(encode(TABLE, "csv")), "gzip-compressed but the name has no"),
        ("b.csv.gz", gzip.compress(b""), "decompresses to nothing"),
        ("b.jsonl.gz", gzip.compress(encode(TABLE, "csv")), "name says jsonl but the bytes are"),
    ],
)
def test_bad_compressed_bytes_get_a_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile, match=reason):
        read_batch(data, name, COLUMNS)
