"""A report the view links to, found through its record: a drift audit's Evidently report, a
validated file's Great Expectations data docs (or its JSON report where no docs were built).

The caller names a record (stage, run, subject), never an object key: the key comes from the
record, and only keys under the pipeline's own report places are served, so a link cannot
be turned into a read of any other object in the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopline.records import RecordStage, RecordStore, StageRecord
from loopline.records.store import RecordError

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

MAX_REPORT_BYTES = 64 * 1024 * 1024  # an Evidently report embeds its JS: a few MB each


class ReportNotFound(LookupError):
    """No such record, no report for it, or not one this pipeline's records may point to."""


@dataclass(frozen=True)
class Report:
    filename: str  # for the download's name
    body: bytes  # as stored: gzip-encoded where `encoding` says so
    content_type: str
    encoding: str | None  # "gzip" for the drift report (stored compressed)


def read_report(
    store: ObjectStore, spec: PipelineSpec, stage: str, run_id: str, subject: str = "run"
) -> Report:
    """The report of one drift audit (``stage="drift"``) or one validated file
    (``stage="validation"``, `subject` the file as its record names it)."""
    if stage == RecordStage.DRIFT:
        return _drift_report(store, spec, run_id)
    if stage == RecordStage.VALIDATION:
        return _validation_report(store, spec, run_id, subject)
    raise ReportNotFound(f"no reports for stage {stage!r}: drift or validation")


def _drift_report(store: ObjectStore, spec: PipelineSpec, run_id: str) -> Report:
    from loopline.drift.report import ReportPlace

    record = _record(store, spec, RecordStage.DRIFT, run_id, "run")
    place = ReportPlace.of(spec, run_id)
    if record.payload.get("report") != place.html_uri:
        raise ReportNotFound(f"the drift audit of run {run_id} names no report of its own")
    return _read(store, spec, place.html_key, f"{spec.name}-drift-{run_id}.html")


def _validation_report(store: ObjectStore, spec: PipelineSpec, run_id: str, subject: str) -> Report:
    from loopline.validation.gate import DATA_DOCS_SUFFIX, REPORT_SUFFIX

    record = _record(store, spec, RecordStage.VALIDATION, run_id, subject)
    key = record.payload.get("report_key")
    quarantine = record.payload.get("quarantine_key")
    # Reports are written beside the quarantined original, only there (`GateResult`).
    if not key or not quarantine or key != quarantine + REPORT_SUFFIX:
        raise ReportNotFound(f"{subject} of run {run_id} has no validation report")
    name = subject.rsplit("/", 1)[-1]
    docs = quarantine + DATA_DOCS_SUFFIX
    if store.head(spec.data.bucket, docs) is not None:
        return _read(store, spec, docs, f"{name}{DATA_DOCS_SUFFIX}")
    return _read(store, spec, key, f"{name}{REPORT_SUFFIX}")


def _record(
    store: ObjectStore, spec: PipelineSpec, stage: RecordStage, run_id: str, subject: str
) -> StageRecord:
    try:
        return RecordStore(store, spec.data.bucket).read(spec.name, stage, run_id, subject)
    except RecordError as exc:
        raise ReportNotFound(str(exc)) from exc


def _read(store: ObjectStore, spec: PipelineSpec, key: str, filename: str) -> Report:
    head = store.head(spec.data.bucket, key)
    if head is None:
        raise ReportNotFound(f"s3://{spec.data.bucket}/{key} is not there (yet)")
    if int(head.get("ContentLength", 0)) > MAX_REPORT_BYTES:
        raise ReportNotFound(f"s3://{spec.data.bucket}/{key} is larger than a report can be")
    content_type = "application/json" if key.endswith(".json") else "text/html"
    return Report(
        filename=filename,
        body=store.get(spec.data.bucket, key),
        content_type=content_type,
        encoding=head.get("ContentEncoding"),
    )
