"""The audit's report, rendered by Evidently 0.7 from the two samples.

Evidently's ``DataDriftPreset`` draws the per-column distributions and runs its own tests
(``include_tests=True``) on the reference and current samples (up to 5,000 rows each, drawn
uniformly; see ``loopline.data.profiles``), with an explicit ``DataDefinition`` (without one,
high-cardinality strings become "text" and go through a classifier-based test). The record's
verdict comes from the profiles of every row, not from these samples: the report's scores
differ from the verdict's by sampling error (their gap is printed in the report's JSON).
The HTML embeds Evidently's script bundle (megabytes): it is stored gzip-compressed with
``Content-Encoding: gzip``, so a browser opening it decompresses it.
"""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopline.data.profiles import SAMPLE_PRIORITY

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedReport:
    html_gzip: bytes
    html_bytes: int  # before compression
    evidently: dict[str, Any]  # Evidently's own JSON (metrics and tests)

    def value_drift(self) -> dict[str, dict[str, Any]]:
        """Evidently's per-column drift on the samples: method, threshold, score."""
        found = {}
        for metric in self.evidently.get("metrics", []):
            config = metric.get("config", {})
            if str(config.get("type", "")).endswith("ValueDrift"):
                found[config["column"]] = {
                    "method": config.get("method"),
                    "threshold": config.get("threshold"),
                    "score": metric.get("value"),
                }
        return found


def render(
    reference: pa.Table, current: pa.Table, numeric: list[str], categorical: list[str]
) -> RenderedReport:
    """Evidently's data drift report of `current` against `reference` (samples)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*numeric, *categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    current_set, reference_set = (
        Dataset.from_pandas(_frame(table, columns), data_definition=definition)
        for table in (current, reference)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas/scipy chatter about small bins
        snapshot = Report([DataDriftPreset()], include_tests=True).run(current_set, reference_set)
    with tempfile.TemporaryDirectory(prefix="loopline-drift-") as folder:
        path = Path(folder) / "drift.html"
        snapshot.save_html(str(path))
        html = path.read_bytes()
    return RenderedReport(gzip.compress(html, 6), len(html), json.loads(snapshot.json()))


def _frame(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    kept = [name for name in columns if name in table.column_names and name != SAMPLE_PRIORITY]
    return table.select(kept).to_pandas()
