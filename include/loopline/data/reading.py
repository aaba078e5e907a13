"""Read a landed file strictly into the spec's column types, or say exactly why not."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from loopline.spec.sections import Column, ColumnType, FileFormat, ValidationSpec
from loopline.storage.formats import decode, format_for_key

ARROW_TYPES = {
    ColumnType.STRING: pa.string(),
    ColumnType.INT64: pa.int64(),
    ColumnType.FLOAT32: pa.float32(),
    ColumnType.FLOAT64: pa.float64(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
}


def canonical_schema(columns: Sequence[Column]) -> pa.Schema:
    """The validated zone's schema: the spec's columns, in its order and types, nullable (a
    CSV never says a column is not null; a Parquet writer may: the two must concatenate)."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])


def conform(table: pa.Table, columns: Sequence[Column]) -> pa.Table:
    """`table` (already cast to the spec's types by read_batch) in the canonical schema."""
    schema = canonical_schema(columns)
    return table.select(schema.names).cast(schema)


class UnreadableFile(Exception):
    """The file cannot be read as a batch; `kind` groups reasons for reports and routing;
    `numbers` (sizes, counts, the limit crossed) go into the quarantine report beside it."""

    def __init__(
        self, kind: str, reason: str, numbers: dict[str, int | float | str] | None = None
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.numbers = numbers or {}


# Compressed landed files: the codec by the name's last suffix, checked against its magic bytes.
COMPRESSIONS = {
    ".gz": ("gzip", b"\x1f\x8b"),
    ".zst": ("zstd", b"\x28\xb5\x2f\xfd"),
    ".zstd": ("zstd", b"\x28\xb5\x2f\xfd"),
}
MIB = 1 << 20
CHUNK_BYTES = MIB  # decompressed per step: the most a bomb gets past a limit
# The compression-ratio limit starts counting past this much output: a small file of very
# repetitive rows may compress 1,000:1 and is harmless; a bomb is large by definition.
RATIO_FREE_BYTES = 16 << 20


@dataclass(frozen=True)
class ReadLimits:
    """How much a landed file may cost to read (spec: validation.max_*), checked before the
    bytes are decoded, so that a bomb is a quarantined file, not a task killed for memory."""

    max_file_bytes: int
    max_decoded_bytes: int
    max_compression_ratio: float
    max_rows: int

    @classmethod
    def of(cls, validation: ValidationSpec) -> ReadLimits:
        return cls(
            max_file_bytes=int(validation.max_file_mib * MIB),
            max_decoded_bytes=int(validation.max_decoded_mib * MIB),
            max_compression_ratio=validation.max_compression_ratio,
            max_rows=validation.max_rows,
        )

    def output_cap(self, compressed_bytes: int) -> tuple[int, str]:
        """The most `compressed_bytes` may decompress to, and which limit sets it."""
        by_ratio = max(int(compressed_bytes * self.max_compression_ratio), RATIO_FREE_BYTES)
        if by_ratio < self.max_decoded_bytes:
            return by_ratio, (
                f"validation.max_compression_ratio ({self.max_compression_ratio:g}:1 "
                f"of {compressed_bytes:,} compressed bytes)"
            )
        return self.max_decoded_bytes, f"validation.max_decoded_mib ({self.max_decoded_bytes:,} B)"


def too_large(reason: str, **numbers: int | float | str) -> UnreadableFile:
    """A file refused for its size: quarantined with the numbers that decided it."""
    return UnreadableFile("too large", reason, numbers)


def decompress(data: bytes, key: str, limits: ReadLimits | None = None) -> tuple[bytes, str]:
    """The bytes and the name without their compression (``b.csv.gz`` -> ``b.csv``); bytes
    that are not what the name says, or do not decompress, are UnreadableFile. With `limits`,
    the output is capped as it streams out (too large: UnreadableFile "too large")."""
    for suffix, (codec, magic) in COMPRESSIONS.items():
        if not key.endswith(suffix):
            continue
        if not data.startswith(magic):
            raise UnreadableFile("compression", f"the name says {codec} but the bytes are not")
        cap = limits.output_cap(len(data)) if limits else None
        try:
            raw = _inflate(codec, data, cap)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise UnreadableFile("compression", f"not valid {codec}: {exc}") from exc
        return raw, key.removesuffix(suffix)
    for codec, magic in {codec: magic for codec, magic in COMPRESSIONS.values()}.items():
        if data.startswith(magic):
            raise UnreadableFile(
                "compression", f"the bytes are {codec}-compressed but the name has no suffix for it"
            )
    return data, key


def _inflate(codec: str, data: bytes, cap: tuple[int, str] | None) -> bytes:
    """Decompress in CHUNK_BYTES steps, so that output past the cap is never produced."""
    chunks = _gunzip(data) if codec == "gzip" else _unzstd(data)
    limit, set_by = cap if cap else (None, "")
    out = io.BytesIO()  # getvalue() hands over its buffer: no second copy of the output
    for chunk in chunks:
        out.write(chunk)
        if limit is not None and out.tell() > limit:
            raise too_large(
                f"decompresses to more than {limit:,} bytes ({len(data):,} compressed), "
                f"the limit set by {set_by}",
                compressed_bytes=len(data),
                decompressed_bytes_at_least=out.tell(),
                max_decompressed_bytes=limit,
            )
    return out.getvalue()


def _gunzip(data: bytes) -> Iterator[bytes]:
    """Every member of a gzip file, as gzip.decompress reads them, CHUNK_BYTES at a time."""
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        while not inflater.eof:
            chunk = inflater.decompress(pending, CHUNK_BYTES)
            pending = inflater.unconsumed_tail
            if not (chunk or pending or inflater.eof):
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            yield chunk
        rest = inflater.unused_data


def _unzstd(data: bytes) -> Iterator[bytes]:
    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            while chunk := reader.read(CHUNK_BYTES):
                yield chunk
    except zstandard.ZstdError as exc:
        raise ValueError(str(exc)) from exc


def sniff_format(data: bytes) -> FileFormat:
    """What the bytes are, whatever the name says: Parquet magic, a JSON object, else text."""
    if data[:4] == b"PAR1":
        return FileFormat.PARQUET
    if data.lstrip()[:1] == b"{":
        return FileFormat.JSONL
    return FileFormat.CSV


def read_batch(
    data: bytes,
    key: str,
    columns: Sequence[Column],
    default_format: FileFormat | None = None,
    limits: ReadLimits | None = None,
) -> pa.Table:
    """Decode `data` (named `key`) and cast the spec's columns to their declared types.

    Missing or extra columns are left for the suite to judge; everything that stops the file
    from being read at all raises UnreadableFile with a reason a person can act on. With
    `limits` (landed files: untrusted), a file that would cost more to decode is "too large";
    without, bytes Loopline wrote itself are read as they are.
    """
    if not data:
        raise UnreadableFile("empty", "the object is empty (0 bytes)")
    if limits is not None and (problem := file_size_problem(len(data), limits)):
        raise problem
    data, key = decompress(data, key, limits)
    if not data:
        raise UnreadableFile("empty", "the object decompresses to nothing")
    try:
        declared = format_for_key(key, default_format)
    except ValueError as exc:
        raise UnreadableFile("format", str(exc)) from exc
    actual = sniff_format(data)
    if actual is not declared:
        raise UnreadableFile(
            "format", f"the name says {declared.value} but the bytes are {actual.value}"
        )
    if declared is not FileFormat.PARQUET:
        _check_utf8(data)
    elif limits is not None:
        check_parquet_footer(data, limits)
    try:
        table = decode(data, declared)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise UnreadableFile("corrupt", f"cannot parse as {declared.value}: {exc}") from exc
    if table.num_rows == 0:
        raise UnreadableFile("empty", "the file holds no rows")
    if declared is FileFormat.CSV:
        _check_delimiter(table)
    return _cast(table, columns)


def file_size_problem(size: int, limits: ReadLimits) -> UnreadableFile | None:
    """The object's own size, before any of it is read (the gate takes it from a HEAD)."""
    if size <= limits.max_file_bytes:
        return None
    return too_large(
        f"the object is {size:,} bytes, more than validation.max_file_mib "
        f"({limits.max_file_bytes:,} bytes); it was not read",
        object_bytes=size,
        max_file_bytes=limits.max_file_bytes,
    )


def check_parquet_footer(data: bytes, limits: ReadLimits) -> None:
    """Rows and uncompressed bytes as the footer states them, before any page is decoded:
    Parquet pages decompress with no cap of their own, and a column of one repeated value
    takes a few bytes on disk for any number of rows."""
    try:
        meta = pq.read_metadata(pa.BufferReader(data))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise UnreadableFile("corrupt", f"cannot parse as parquet (footer): {exc}") from exc
    rows = meta.num_rows
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    numbers = {"footer_rows": rows, "footer_uncompressed_bytes": uncompressed}
    if rows > limits.max_rows:
        raise too_large(
            f"the Parquet footer says {rows:,} rows, more than validation.max_rows "
            f"({limits.max_rows:,})",
            **numbers,
            max_rows=limits.max_rows,
        )
    if uncompressed > limits.max_decoded_bytes:
        raise too_large(
            f"the Parquet footer says {uncompressed:,} uncompressed bytes, more than "
            f"validation.max_decoded_mib ({limits.max_decoded_bytes:,} bytes)",
            **numbers,
            max_decoded_bytes=limits.max_decoded_bytes,
        )


def _check_delimiter(table: pa.Table) -> None:
    """A CSV written with another delimiter parses as one column named like 'a;b;c'."""
    if table.num_columns != 1:
        return
    header = table.column_names[0]
    for delimiter in (";", "\t", "|"):
        if header.count(delimiter) >= 1:
            shown = header if len(header) <= 60 else header[:57] + "..."
            raise UnreadableFile(
                "format",
                f"wrong CSV delimiter: the header {shown!r} is one column; "
                f"it looks {delimiter!r}-separated, expected ','",
            )


def _check_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            "encoding", f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from exc


def _cast(table: pa.Table, columns: Sequence[Column]) -> pa.Table:
    problems = []
    for column in columns:
        if column.name not in table.column_names:
            continue
        index = table.column_names.index(column.name)
        target = ARROW_TYPES[column.type]
        current = table.column(index)
        if current.type == target:
            continue
        try:
            table = table.set_column(index, column.name, current.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            problems.append(
                f"{column.name}: expected {column.type.value}, got {current.type} "
                f"({str(exc).splitlines()[0]})"
            )
    if problems:
        raise UnreadableFile("types", "wrong column types: " + "; ".join(problems))
    return table
