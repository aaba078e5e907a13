"""Reading a landed file costs at most what the spec allows: a decompression bomb or a Parquet
file of a hundred million rows is refused as "too large", with its numbers, in bounded memory
and before the bytes are decoded. Here, the bombs themselves: each takes seconds of CPU to
make and to check; the quick limits are unit-tested (tests/unit/data/test_read_limits.py)."""

from __future__ import annotations

import pytest
from support.bombs import GIB, MIB, gzip_bomb, parquet_of_many_rows, refused, spec_limits, zstd_bomb


@pytest.mark.parametrize(
    ("name", "bomb"), [("bomb.csv.gz", gzip_bomb), ("bomb.csv.zst", zstd_bomb)]
)
def test_a_decompression_bomb_is_refused_in_bounded_memory(name: str, bomb) -> None:
    data = bomb()
    error, peak, took = refused(data, name, spec_limits())
    # The spec's default ratio limit (100:1) stops the 1 GiB long before its end.
    cap = max(100 * len(data), 16 * MIB)
    assert error.numbers["max_decompressed_bytes"] == cap
    assert cap < error.numbers["decompressed_bytes_at_least"] <= cap + MIB
    assert "validation.max_compression_ratio" in error.reason
    # The output buffer grows by an eighth at a time: the peak is the cap and a little more,
    # a tenth of what the whole bomb would take.
    assert peak < 1.25 * cap + 4 * MIB, f"peak {peak / MIB:.0f} MiB, cap {cap / MIB:.0f} MiB"
    assert peak < GIB / 8
    print(f"\n{name}: {len(data):,} B -> 1 GiB; refused in {took:.2f} s, peak {peak / MIB:.0f} MiB")


def test_the_decoded_size_limit_caps_output_below_the_ratio() -> None:
    data = gzip_bomb()
    error, peak, _ = refused(data, "bomb.csv.gz", spec_limits(max_decoded_mib=4))
    assert error.numbers["max_decompressed_bytes"] == 4 * MIB
    assert "validation.max_decoded_mib" in error.reason
    assert peak < 16 * MIB


def test_a_parquet_footer_with_too_many_rows_is_refused_before_decoding() -> None:
    """100 million rows in 0.5 MB: decoding would take 800 MB; the footer says so first."""
    data = parquet_of_many_rows()
    assert len(data) < MIB
    error, peak, _ = refused(data, "b.parquet", spec_limits())
    assert error.numbers["footer_rows"] == 100_000_000
    assert error.numbers["max_rows"] == 10_000_000
    assert peak < 16 * MIB


def test_bombs_are_what_they_claim() -> None:
    """The fixtures themselves: 1 GiB of output from about a megabyte."""
    assert len(gzip_bomb()) < 1.1 * MIB and len(zstd_bomb()) < 64 * 1024
    total = 0
    for chunk in iter_gunzip(gzip_bomb()):
        total += len(chunk)
    assert total == GIB


def iter_gunzip(data: bytes):
    import zlib

    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = data
    while pending:
        yield inflater.decompress(pending, 64 * MIB)
        pending = inflater.unconsumed_tail
    yield inflater.flush()
