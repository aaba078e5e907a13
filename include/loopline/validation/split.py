"""Row-level split: rows that break row-level expectations leave a batch, the rest go on.

Only failed *critical* expectations that judge rows one by one (GE map expectations: not
null, in set, between, unique, regex...) pick rows out. A failed table-level expectation
(column set, row count, an aggregate), an expectation that could not run, or an unreadable
file leaves nothing to split: the whole file is quarantined. Rows that a passing expectation
tolerated through ``mostly`` stay.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from loopline.validation.report import ValidationReport

REASON_COLUMN = "_rejected_because"


@dataclass(frozen=True)
class RowSplit:
    accepted: pa.Table
    rejected: pa.Table  # the rejected rows, plus REASON_COLUMN: the expectations each broke

    @property
    def rejected_share(self) -> float:
        total = self.accepted.num_rows + self.rejected.num_rows
        return self.rejected.num_rows / total if total else 0.0


def why_not_splittable(report: ValidationReport) -> str | None:
    """None when every critical failure names its rows; else why the file goes whole."""
    if report.unreadable:
        return "the file could not be read"
    for outcome in report.failures:
        if not outcome.row_level:
            return f"{outcome.type} judges the whole table, not rows"
        if outcome.error or not outcome.unexpected_rows:
            return f"{outcome.type} on {outcome.column} did not say which rows broke it"
    return None


def split_rows(table: pa.Table, report: ValidationReport) -> RowSplit:
    """Split `table` by the failed row-level outcomes of `report` (validated with row positions)."""
    if problem := why_not_splittable(report):
        raise ValueError(f"{report.key} cannot be split by rows: {problem}")
    reasons: dict[int, list[str]] = defaultdict(list)
    for outcome in report.failures:
        label = f"{outcome.type}({outcome.column})" if outcome.column else outcome.type
        for position in outcome.unexpected_rows:
            reasons[position].append(label)
    rejected_positions = sorted(reasons)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[rejected_positions] = False
    rejected = table.take(pa.array(rejected_positions, pa.int64()))
    rejected = rejected.append_column(
        REASON_COLUMN,
        pa.array([reasons[position] for position in rejected_positions], pa.list_(pa.string())),
    )
    return RowSplit(accepted=table.filter(pa.array(keep)), rejected=rejected)
