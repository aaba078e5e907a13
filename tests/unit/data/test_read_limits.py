"""Reading a landed file costs at most what the spec allows: a decompression bomb or a Parquet
file of a hundred million rows is refused as "too large", with its numbers, in bounded memory
and before the bytes are decoded. The bombs, seconds of CPU each, are in
tests/component/data/test_read_limits.py."""

from __future__ import annotations

import gzip

import pytest
from loopline.data.reading import UnreadableFile, read_batch
from loopline.demo.card_transactions import generate
from loopline.storage.formats import encode
from support.bombs import COLUMNS, MIB, refused, spec_limits


def test_a_file_over_the_size_limit_is_refused_before_decompressing() -> None:
    data = gzip.compress(encode(generate(300, seed=1), "csv"))
    error, _, _ = refused(data, "b.csv.gz", spec_limits(max_file_mib=1 / 1024))
    assert error.numbers == {"object_bytes": len(data), "max_file_bytes": 1024}
    assert "validation.max_file_mib" in error.reason


def test_a_parquet_footer_with_too_many_uncompressed_bytes_is_refused() -> None:
    data = encode(generate(20_000, seed=2), "parquet")
    error, _, _ = refused(data, "b.parquet", spec_limits(max_decoded_mib=0.1))
    assert error.numbers["footer_uncompressed_bytes"] > 0.1 * MIB
    assert "uncompressed bytes" in error.reason


def test_files_within_the_limits_read_as_before() -> None:
    table = generate(500, seed=3)
    multi_member = gzip.compress(encode(table.slice(0, 200), "csv")) + gzip.compress(
        encode(table.slice(200), "csv").split(b"\n", 1)[1]  # a second member, no header
    )
    read = read_batch(multi_member, "b.csv.gz", COLUMNS, limits=spec_limits())
    assert read.num_rows == 500
    assert read_batch(encode(table, "parquet"), "b.parquet", COLUMNS, limits=spec_limits())


def test_a_truncated_gzip_is_still_corrupt_not_too_large() -> None:
    data = gzip.compress(encode(generate(300, seed=1), "csv"))[:-20]
    with pytest.raises(UnreadableFile, match="not valid gzip") as caught:
        read_batch(data, "b.csv.gz", COLUMNS, limits=spec_limits())
    assert caught.value.kind == "compression"
