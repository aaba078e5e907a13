"""Reading a landed file costs at most what the spec allows: a decompression bomb or a Parquet
file of a hundred million rows is refused as "too large", with its numbers, in bounded memory
and before the bytes are decoded."""

from __future__ import annotations

import gzip
import time
import tracemalloc

import pytest
from bombs import GIB, gzip_bomb, parquet_of_many_rows, zstd_bomb
from conftest import PIPELINES
from loopline.data.reading import UnreadableFile, read_batch
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import encode

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
COLUMNS = SPEC.data.columns
MIB = 1 << 20


def spec_limits(**validation: float | int):
    """The read limits of card_fraud.yaml (defaults), with `validation` overrides."""
    from loopline.data.reading import ReadLimits

    return ReadLimits.of(SPEC.validation.model_copy(update=validation))


def refused(data: bytes, name: str, limits) -> tuple[UnreadableFile, int, float]:
    """The refusal, the peak of Python allocations while reading, and the seconds it took."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(UnreadableFile) as caught:
            read_batch(data, name, COLUMNS, limits=limits)
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind == "too large", caught.value.reason
    return caught.value, peak, took


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


def test_a_file_over_the_size_limit_is_refused_before_decompressing() -> None:
    data = gzip.compress(encode(generate(300, seed=1), "csv"))
    error, _, _ = refused(data, "b.csv.gz", spec_limits(max_file_mib=1 / 1024))
    assert error.numbers == {"object_bytes": len(data), "max_file_bytes": 1024}
    assert "validation.max_file_mib" in error.reason


def test_a_parquet_footer_with_too_many_rows_is_refused_before_decoding() -> None:
    """100 million rows in 0.5 MB: decoding would take 800 MB; the footer says so first."""
    data = parquet_of_many_rows()
    assert len(data) < MIB
    error, peak, _ = refused(data, "b.parquet", spec_limits())
    assert error.numbers["footer_rows"] == 100_000_000
    assert error.numbers["max_rows"] == 10_000_000
    assert peak < 16 * MIB


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
