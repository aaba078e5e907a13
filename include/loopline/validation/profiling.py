"""Profile a trusted dataset into a starting expectation suite, for a person to review.

Great Expectations 1.x ships no profiler, so the starting point is built from Arrow column
statistics: the exact column set, non-null where the data has no nulls, the key unique,
numeric ranges widened by their own width on each side (so the tails of fresh data land
inside) but never across zero (a column never negative in the trusted data stays
non-negative: a negative radius or amount is impossible, not a tail), and value sets for
low-cardinality columns. The review note lists every bound that was widened and by how much.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopline.runtime.files import write_atomically
from loopline.spec.sections import DataSpec


def profile_suite(
    table: pa.Table,
    data: DataSpec,
    name: str,
    *,
    source: str,
    margin: float = 1.0,  # widen observed ranges by this share of their width, each side
    max_categories: int = 50,
) -> dict[str, Any]:
    """A suite document (the JSON kept under include/expectations/) describing `table`."""
    expectations: list[dict[str, Any]] = [
        _expect("table_columns_to_match_set", column_set=data.column_names, exact_match=True),
        _expect("table_row_count_to_be_between", min_value=1),
        _expect("column_values_to_be_unique", column=data.key),
    ]
    for column in data.columns:
        values = table.column(column.name)
        if values.null_count == 0 and not column.nullable:
            expectations.append(_expect("column_values_to_not_be_null", column=column.name))
        expectations += _value_expectations(column.name, values, data, margin, max_categories)
    return {
        "name": name,
        "meta": {
            "profiled_from": source,
            "rows": table.num_rows,
            "review": "generated as a starting point; tighten or loosen before use",
            "widened_bounds": _widened(table, expectations),
        },
        "expectations": expectations,
    }


def widen(low: float, high: float, margin: float) -> tuple[float, float]:
    """[low, high] widened by `margin` of its width on each side, but never across zero."""
    slack = (high - low) * margin
    wide_low, wide_high = low - slack, high + slack
    if low >= 0 > wide_low:
        wide_low = 0.0
    if high <= 0 < wide_high:
        wide_high = 0.0
    return _round(wide_low), _round(wide_high)


def _widened(table: pa.Table, expectations: list[dict[str, Any]]) -> list[str]:
    """One line per range check, observed against expected, for the reviewer."""
    notes = []
    for expectation in expectations:
        if expectation["type"] != "expect_column_values_to_be_between":
            continue
        kwargs = expectation["kwargs"]
        bounds = pc.min_max(table.column(kwargs["column"]))
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        kept_at_zero = low >= 0 and kwargs["min_value"] == 0
        notes.append(
            f"{kwargs['column']}: observed [{_round(low)}, {_round(high)}], expected "
            f"[{kwargs['min_value']}, {kwargs['max_value']}]"
            + (" (kept at zero: never negative here)" if kept_at_zero else "")
        )
    return notes


def write_suite(document: dict[str, Any], path: Path, *, overwrite: bool = False) -> Path:
    """Write the suite after checking it loads; never replace a reviewed suite by accident."""
    from loopline.validation.suites import suite_from_document

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; it may hold reviewed changes (use --force)")
    text = json.dumps(document, indent=2) + "\n"
    suite_from_document(json.loads(text), path)  # one that does not load is never written
    write_atomically(path, text.encode())
    return path


def _value_expectations(
    name: str, values: pa.ChunkedArray, data: DataSpec, margin: float, max_categories: int
) -> list[dict[str, Any]]:
    kind = values.type
    if (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and name != data.key:
        bounds = pc.min_max(values)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None:
            return []
        if pa.types.is_integer(kind) and len(pc.unique(values)) <= max_categories:
            return [
                _expect(
                    "column_values_to_be_in_set",
                    column=name,
                    value_set=sorted(v for v in pc.unique(values).to_pylist() if v is not None),
                )
            ]
        min_value, max_value = widen(low, high, margin)
        return [
            _expect(
                "column_values_to_be_between",
                column=name,
                min_value=min_value,
                max_value=max_value,
            )
        ]
    if pa.types.is_string(kind) and name != data.key:
        distinct = pc.unique(values).to_pylist()
        if len(distinct) <= max_categories:
            return [
                _expect(
                    "column_values_to_be_in_set",
                    column=name,
                    value_set=sorted(v for v in distinct if v is not None),
                )
            ]
    return []


def _expect(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_{kind}", "kwargs": kwargs}


def _round(value: float) -> float:
    return float(f"{value:.6g}")
