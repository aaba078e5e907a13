"""Landed files that cost far more to read than they weigh, built as streams so that the tests
that make them stay small in memory (each is built once per test process), and the refusal
the read limits give them."""

from __future__ import annotations

import functools
import io
import time
import tracemalloc
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from loopline.data.reading import ReadLimits, UnreadableFile, read_batch
from loopline.spec import load_spec

from support.paths import PIPELINES

GIB = 1 << 30
_ZEROS = bytes(1 << 20)


@functools.cache
def gzip_bomb(gib: int = 1) -> bytes:
    """`gib` GiB of zeros as one gzip member: about 1 MB (deflate's ratio tops out ~1,030:1)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(_ZEROS) for _ in range(gib * 1024)]
    return b"".join([*parts, deflate.flush()])


@functools.cache
def zstd_bomb(gib: int = 1) -> bytes:
    """`gib` GiB of zeros as one zstd frame: about 32 KB."""
    compressor = zstandard.ZstdCompressor().compressobj()
    parts = [compressor.compress(_ZEROS) for _ in range(gib * 1024)]
    return b"".join([*parts, compressor.flush()])


@functools.cache
def parquet_of_many_rows(millions: int = 100) -> bytes:
    """`millions` million rows of one float64 column, all 0.0: under 1 MB on disk, and its
    footer states under 1 MB uncompressed too (dictionary and run-length encoding), yet
    decoding it takes 8 bytes a row (800 MB for 100 million)."""
    batch = pa.table({"amount": pa.array(np.zeros(1_000_000, dtype=np.float64))})
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, batch.schema, compression="zstd") as writer:
        for _ in range(millions):
            writer.write_table(batch)
    return sink.getvalue()


SPEC = load_spec(PIPELINES / "card_fraud.yaml")
COLUMNS = SPEC.data.columns
MIB = 1 << 20


def spec_limits(**validation: float | int):
    """The read limits of card_fraud.yaml (defaults), with `validation` overrides."""
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
