"""Read a landed file strictly into the spec's column types, or say exactly why not."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from loopline.spec.model import Column, ColumnType, FileFormat
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
    """The file cannot be read as a batch; `kind` groups reasons for reports and routing."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# Compressed landed files: the codec by the name's last suffix, checked against its magic bytes.
COMPRESSIONS = {
    ".gz": ("gzip", b"\x1f\x8b"),
    ".zst": ("zstd", b"\x28\xb5\x2f\xfd"),
    ".zstd": ("zstd", b"\x28\xb5\x2f\xfd"),
}


def decompress(data: bytes, key: str) -> tuple[bytes, str]:
    """The bytes and the name without their compression (``b.csv.gz`` -> ``b.csv``); bytes
    that are not what the name says, or do not decompress, are UnreadableFile."""
    for suffix, (codec, magic) in COMPRESSIONS.items():
        if not key.endswith(suffix):
            continue
        if not data.startswith(magic):
            raise UnreadableFile("compression", f"the name says {codec} but the bytes are not")
        try:
            raw = _inflate(codec, data)
        except (OSError, EOFError, ValueError) as exc:
            raise UnreadableFile("compression", f"not valid {codec}: {exc}") from exc
        return raw, key.removesuffix(suffix)
    for codec, magic in {codec: magic for codec, magic in COMPRESSIONS.values()}.items():
        if data.startswith(magic):
            raise UnreadableFile(
                "compression", f"the bytes are {codec}-compressed but the name has no suffix for it"
            )
    return data, key


def _inflate(codec: str, data: bytes) -> bytes:
    if codec == "gzip":
        import gzip

        return gzip.decompress(data)
    import io

    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            return reader.read()
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
    data: bytes, key: str, columns: Sequence[Column], default_format: FileFormat | None = None
) -> pa.Table:
    """Decode `data` (named `key`) and cast the spec's columns to their declared types.

    Missing or extra columns are left for the suite to judge; everything that stops the file
    from being read at all raises UnreadableFile with a reason a person can act on.
    """
    if not data:
        raise UnreadableFile("empty", "the object is empty (0 bytes)")
    data, key = decompress(data, key)
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
    try:
        table = decode(data, declared)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise UnreadableFile("corrupt", f"cannot parse as {declared.value}: {exc}") from exc
    if table.num_rows == 0:
        raise UnreadableFile("empty", "the file holds no rows")
    if declared is FileFormat.CSV:
        _check_delimiter(table)
    return _cast(table, columns)


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
