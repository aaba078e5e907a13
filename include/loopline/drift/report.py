"""The audit's report, rendered by Evidently 0.7 from the two samples, after the decision.

The decision never waits for it: the audit (``loopline.drift.audit``) records its verdict, its
decision and where the report will land, with the keys of the two samples it used; the
drift_audit DAG's ``report`` task then calls ``report_audit``, in parallel with the retrain
trigger. A failed render fails that task, never the decision.

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
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopline.data.profile_store import profiled_columns
from loopline.data.profiles import SAMPLE_PRIORITY, merge_samples
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.spec.sections import PipelineSpec
from loopline.storage.keys import safe_segment
from loopline.storage.objects import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REPORTS_PREFIX = "reports/"
REPORT_SUBJECT = "report"  # the report task's record, beside the audit's ("run")


class NothingToReport(Exception):
    """The audit of this run recorded no comparison (it was skipped): no report to render."""


@dataclass(frozen=True)
class ReportPlace:
    """Where one audit's report lands: ``s3://<bucket>/reports/<pipeline>/<run>/``."""

    bucket: str
    prefix: str

    @classmethod
    def of(cls, spec: PipelineSpec, run_id: str) -> ReportPlace:
        return cls(spec.data.bucket, f"{REPORTS_PREFIX}{spec.name}/{safe_segment(run_id)}/")

    @property
    def html_key(self) -> str:
        return self.prefix + "drift.html"

    @property
    def json_key(self) -> str:
        return self.prefix + "drift.json"

    @property
    def html_uri(self) -> str:
        return f"s3://{self.bucket}/{self.html_key}"

    @property
    def json_uri(self) -> str:
        return f"s3://{self.bucket}/{self.json_key}"


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


@dataclass(frozen=True)
class ReportOutcome:
    uri: str  # the HTML (gzip-encoded); the JSON beside it
    html_bytes: int  # the HTML's size, before and after compression
    html_gzip_bytes: int
    record: StageRecord
    seconds: dict[str, float]  # by phase: reading the samples, rendering, writing


def report_audit(store: ObjectStore, spec: PipelineSpec, run: RunContext) -> ReportOutcome:
    """Render and store the report of the audit recorded for `run` (the same DAG run), from
    the samples its record names; record that it was written (subject ``report``)."""
    records = RecordStore(store, spec.data.bucket)
    audit = records.read(spec.name, RecordStage.DRIFT, run.run_id)
    samples = audit.payload.get("samples")
    if audit.verdict == "skipped" or not samples:
        raise NothingToReport(
            f"the drift audit of run {run.run_id} compared nothing ({audit.verdict}: "
            f"{'; '.join(audit.reasons)}): no report"
        )
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    reference = read_sample(store, spec.data.bucket, samples["reference"])
    current = read_sample(store, spec.data.bucket, samples["current"])
    seconds["samples"] = time.perf_counter() - started
    numeric, categorical = audited_columns(spec)
    started = time.perf_counter()
    report = render(reference, current, numeric, categorical)
    seconds["render"] = time.perf_counter() - started
    started = time.perf_counter()
    place = ReportPlace.of(spec, run.run_id)
    _write(store, place, audit.payload["verdict"], report)
    seconds["write"] = time.perf_counter() - started
    record = run.record(
        RecordStage.DRIFT,
        "rendered",
        subject=REPORT_SUBJECT,
        inputs=[ObjectRef(uri=f"s3://{spec.data.bucket}/{key}") for key in _keys(samples)],
        outputs=[ObjectRef(uri=place.html_uri), ObjectRef(uri=place.json_uri)],
        reasons=[f"Evidently's DataDriftPreset on the samples of audit {run.run_id}"],
        numbers={
            "reference_sample_rows": reference.num_rows,
            "current_sample_rows": current.num_rows,
            "html_bytes": report.html_bytes,
            "html_gzip_bytes": len(report.html_gzip),
            **{f"seconds_{phase}": round(spent, 3) for phase, spent in seconds.items()},
        },
        payload={"report": place.html_uri, "audit_verdict": audit.verdict},
    )
    records.write(record)
    return ReportOutcome(place.html_uri, report.html_bytes, len(report.html_gzip), record, seconds)


def audited_columns(spec: PipelineSpec) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns an audit tests and its report draws: the model's
    features and its label, as the spec types them."""
    numeric, categorical = profiled_columns(spec.data)
    audited = {*spec.model.features.all, spec.model.label}
    return [c for c in numeric if c in audited], [c for c in categorical if c in audited]


def read_sample(store: ObjectStore, bucket: str, keys: list[str]) -> pa.Table:
    """The sample stored under `keys`: one object, or batches' samples merged (bottom-k), as
    the audit merged them."""
    sample = merge_samples(_read_table(store, bucket, key) for key in keys)
    if sample is None:
        raise NothingToReport("the audit's record names no sample")
    return sample


def _read_table(store: ObjectStore, bucket: str, key: str) -> pa.Table:
    data = store.get_if_exists(bucket, key)
    if data is None:
        raise FileNotFoundError(
            f"s3://{bucket}/{key}: a sample the audit used is gone (profiles are kept with "
            "their batches): the report cannot draw the rows the verdict was made on"
        )
    return pq.read_table(pa.BufferReader(data))


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


def _keys(samples: dict[str, list[str]]) -> list[str]:
    return [*samples["reference"], *samples["current"]]


def _write(
    store: ObjectStore, place: ReportPlace, verdict: dict[str, Any], report: RenderedReport
) -> None:
    store.put(place.bucket, place.html_key, report.html_gzip, "text/html", "gzip")
    on_samples = report.value_drift()
    body = {
        "verdict": verdict,
        "evidently_on_samples": on_samples,
        "sample_gap": {
            d["column"]: round(abs(d["score"] - on_samples[d["column"]]["score"]), 6)
            for d in verdict["features"]
            if d["column"] in on_samples and d["score_kind"] == "distance"
        },
        "html_bytes": report.html_bytes,
        "html_gzip_bytes": len(report.html_gzip),
        "evidently": report.evidently,
    }
    data = gzip.compress(json.dumps(body, default=str).encode())
    store.put(place.bucket, place.json_key, data, "application/json", "gzip")
