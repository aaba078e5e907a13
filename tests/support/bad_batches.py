"""Bad landed batches, one per way a file can be wrong, with the reason each must be given.

Shared by the library tests (every verdict) and the DAG test (every one routed through Airflow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from loopline.demo.card_transactions import generate
from loopline.storage.formats import encode


@dataclass(frozen=True)
class BadBatch:
    name: str
    make: Callable[[], bytes]
    file_name: str  # its name decides the format it claims to be
    reason: str  # a regex one of the report's reasons must match

    @property
    def landed_name(self) -> str:
        """A name unique among the batches, with the same extension."""
        return f"{self.name}.{self.file_name.rsplit('.', 1)[-1]}"


def good_table(rows: int = 300) -> pa.Table:
    return generate(rows, seed=21)


def replace_column(name: str, values: Callable[[pa.Table], pa.Array]):
    def change(table: pa.Table) -> pa.Table:
        return table.set_column(table.column_names.index(name), name, values(table))

    return change


def as_bytes(change: Callable[[pa.Table], pa.Table], file_format: str = "parquet"):
    return lambda: encode(change(good_table()), file_format)


def raw(data: bytes):
    return lambda: data


def csv_with_semicolons() -> bytes:
    text = encode(good_table(), "csv").decode()
    return text.replace(",", ";").encode()


def latin1_csv() -> bytes:
    table = replace_column("channel", lambda t: pa.array(["café"] * t.num_rows))(good_table())
    return encode(table, "csv").decode().encode("latin-1")


def _bad(make: Callable[[], bytes], file_name: str, reason: str, *, id: str) -> BadBatch:
    return BadBatch(id, make, file_name, reason)


BAD_BATCHES = [
    _bad(raw(b""), "b.parquet", r"^empty: the object is empty \(0 bytes\)", id="0-byte"),
    _bad(
        raw(b"transaction_id,event_time\n"),
        "b.csv",
        r"^empty: the file holds no rows",
        id="header-only",
    ),
    _bad(
        lambda: encode(good_table(), "parquet")[:-100],
        "b.parquet",
        r"^corrupt: cannot parse as parquet",
        id="truncated-parquet",
    ),
    _bad(
        csv_with_semicolons,
        "b.csv",
        r"^format: wrong CSV delimiter: .* looks ';'-separated, expected ','",
        id="wrong-delimiter",
    ),
    _bad(latin1_csv, "b.csv", r"^encoding: not UTF-8: byte 0xe9 at offset \d+", id="not-utf8"),
    _bad(
        as_bytes(lambda t: t.drop_columns(["amount"])),
        "b.parquet",
        r"expect_table_columns_to_match_set",
        id="missing-column",
    ),
    _bad(
        as_bytes(lambda t: t.append_column("surprise", pa.array([1] * t.num_rows))),
        "b.parquet",
        r"expect_table_columns_to_match_set",
        id="extra-column",
    ),
    _bad(
        as_bytes(replace_column("amount", lambda t: pa.array(["lots"] * t.num_rows)), "csv"),
        "b.csv",
        r"^types: wrong column types: amount: expected float32, got string",
        id="wrong-type",
    ),
    _bad(
        as_bytes(
            replace_column(
                "channel", lambda t: pa.array([None] + ["pos"] * (t.num_rows - 1), pa.string())
            )
        ),
        "b.parquet",
        r"expect_column_values_to_not_be_null on channel: 1 unexpected",
        id="null-not-allowed",
    ),
    _bad(
        as_bytes(replace_column("amount", lambda t: pc.multiply(t["amount"], -1))),
        "b.parquet",
        r"expect_column_values_to_be_between on amount: 300 unexpected",
        id="out-of-range",
    ),
    _bad(
        as_bytes(
            replace_column(
                "transaction_id", lambda t: pa.array(["dup"] * 2 + [f"id{i}" for i in range(298)])
            )
        ),
        "b.parquet",
        r"expect_column_values_to_be_unique on transaction_id: 2 unexpected .*'dup'",
        id="duplicate-keys",
    ),
    _bad(
        lambda: encode(good_table(), "csv"),
        "b.parquet",
        r"^format: the name says parquet but the bytes are csv",
        id="extension-lies",
    ),
    _bad(
        lambda: encode(good_table(), "parquet"),
        "b.txt",
        r"^format: cannot tell the format of '.*\.txt'",
        id="unknown-extension",
    ),
]
