"""One drift audit: the current window against its reference, a verdict, a decision, a record.

Cost grows with the new data, not the window: every validated batch was profiled once (by the
gate), the reference once per champion version, and an audit merges stored profiles. Rows are
read only for what profiles cannot give: the window's sample (5,000 rows, stored with the
profiles) for the champion's quality on labelled current rows, and for Evidently's p-value
tests when the reference is small (run here with scipy, as Evidently runs them).

Nothing on this path imports Evidently: its report (a fixed ~2.5 s) is rendered afterwards,
from the samples the record names, by ``loopline.drift.report.report_audit`` (the DAG's
``report`` task), so neither the record nor the retrain waits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopline.data.prediction_log import log_prefix, logged_files
from loopline.data.predictions import committed_partitions
from loopline.data.profile_store import (
    PROFILES_PREFIX,
    STATISTICS_SUFFIX,
    ProfileStore,
    sample_key,
)
from loopline.data.profiles import BatchProfile, CategoryProfile, merge_all, profile_table
from loopline.data.validated import coverage, window_keys
from loopline.data.window import RunWindow, partition_date
from loopline.drift.decision import Decision, PastAudit, decide
from loopline.drift.reference import (
    SCORE,
    NoReference,
    Reference,
    champion_reference,
    window_reference,
)
from loopline.drift.report import ReportPlace, audited_columns
from loopline.drift.scores import ColumnDrift, SmallReference, column_drift, sample_drift
from loopline.drift.verdict import QualityCheck, Verdict
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.registry import ModelRegistry
from loopline.registry.importance import DriftedImportance, drifted_importance
from loopline.spec.sections import FileFormat, PipelineSpec
from loopline.storage.formats import CONTENT_TYPES, decode
from loopline.storage.objects import ObjectStore

log = logging.getLogger(__name__)

REASON_LIMIT = 500  # the train DAG's reason Param
REPORT_PENDING = "rendered after the decision by the drift_audit DAG's report task"
Scorer = Callable[[int, pa.Table], np.ndarray]  # (champion version, rows) -> scores


class EmptyWindow(Exception):
    """No validated batch in the current window: nothing to audit."""


@dataclass(frozen=True)
class AuditOutcome:
    verdict: Verdict
    decision: Decision
    report_uri: str  # where the report task writes the HTML (gzip-encoded)
    record: StageRecord
    seconds: dict[str, float] = field(default_factory=dict)  # by phase

    def train_conf(self) -> dict[str, Any]:
        """What the retraining run is started with: its reason names the verdict and report
        (within the train form's 500 characters: the report link is kept whole). The report
        may still be rendering when training starts: the link is where it lands."""
        head, tail = f"drift audit {self.record.run_id}: ", f" (report {self.report_uri})"
        why = "; ".join(self.decision.reasons)
        room = REASON_LIMIT - len(head) - len(tail)
        if len(why) > room:
            why = why[: max(room - 3, 0)] + "..."
        return {"reason": head + why + tail}


def run_audit(
    store: ObjectStore,
    registry: ModelRegistry,
    spec: PipelineSpec,
    window: RunWindow,
    run: RunContext,
    scorer: Scorer | None = None,
) -> AuditOutcome:
    """Audit the validated batches of `window` (its days: the spec's `drift.window_days`),
    decide and record. Nothing to compare (no batch in the window, no champion or reference
    yet) is recorded as a ``skipped`` audit with its reason, then raised (EmptyWindow or
    NoReference): a skip is a decision too, whoever runs the audit."""
    try:
        return _audit(store, registry, spec, window, run, scorer)
    except (EmptyWindow, NoReference) as exc:
        record = run.record(RecordStage.DRIFT, "skipped", reasons=[str(exc)])
        RecordStore(store, spec.data.bucket).write(record)
        raise


def _audit(
    store: ObjectStore,
    registry: ModelRegistry,
    spec: PipelineSpec,
    window: RunWindow,
    run: RunContext,
    scorer: Scorer | None,
) -> AuditOutcome:
    scorer = scorer or champion_scorer(registry, spec)
    keys = list(window_keys(store, spec.data, window))
    dated = f"{window.first_day:%Y-%m-%d} .. {window.last_day:%Y-%m-%d}"
    if not keys:
        raise EmptyWindow(
            f"no validated batch of {spec.name} dated {dated} (drift.window_days "
            f"{window.days}); {coverage(store, spec.data).describe()}; nothing "
            "to audit, nothing triggered"
        )
    clock = _Clock()
    with clock("reference"):
        reference = _reference(store, registry, spec, window, scorer)
    with clock("profiles"):
        current = ProfileStore(store, spec.data).merged(keys)
    log.info(
        "auditing %d batch(es), %d rows, against %s", len(keys), current.rows, reference.description
    )
    with clock("scores"):
        verdict = _verdict(store, spec, dated, keys, reference, current, scorer)
    with clock("decide"):
        decision = decide(
            verdict.crossed(spec.drift),
            spec.drift,
            # Not this run's own record: a retried audit must decide as its first try did.
            [audit for audit in past_audits(store, spec) if audit.run_id != run.run_id],
            reference.version,
            datetime.now(UTC),
        )
    report = ReportPlace.of(spec, run.run_id)
    relied_on = _drifted_importance(registry, spec, verdict)
    matters = [relied_on.describe()] if relied_on and verdict.drifted_features else []
    record = run.record(
        RecordStage.DRIFT,
        decision.verdict,
        inputs=[ObjectRef(uri=f"s3://{spec.data.bucket}/{key}") for key in keys],
        reasons=[*decision.reasons, *matters, *verdict.notes],
        numbers={**verdict.numbers(), "retrain": float(decision.retrain), **clock.numbers()},
        payload={
            "verdict": verdict.to_dict(),
            "decision": decision.to_dict(),
            "report": report.html_uri,  # not there yet: see REPORT_PENDING
            "report_json": report.json_uri,
            "report_status": REPORT_PENDING,
            # The samples the verdict used, for the report to draw the same rows.
            "samples": {
                "reference": list(reference.sample_keys),
                "current": [sample_key(key) for key in keys],
            },
            "champion": reference.version,
            # How much the drifted features matter to the champion (its stored importance).
            "drifted_importance": relied_on.model_dump(mode="json") if relied_on else None,
        },
    )
    with clock("record"):
        RecordStore(store, spec.data.bucket).write(record)
    return AuditOutcome(verdict, decision, report.html_uri, record, dict(clock.seconds))


def _drifted_importance(
    registry: ModelRegistry, spec: PipelineSpec, verdict: Verdict
) -> DriftedImportance | None:
    """The drifted features' importance to the champion, read from its metadata. None with a
    "window" reference: that audit compares data with data and needs no registry."""
    champion = verdict.reference_version
    if champion is None:
        return None
    importance = registry.get(spec.name, champion).importance
    return drifted_importance(importance, verdict.drifted_features, champion)


class _Clock:
    """Seconds spent per phase of an audit, for its record and its log."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self.seconds[phase] = self.seconds.get(phase, 0.0) + spent

    def numbers(self) -> dict[str, float]:
        return {f"seconds_{phase}": round(spent, 3) for phase, spent in self.seconds.items()}


def champion_scorer(registry: ModelRegistry, spec: PipelineSpec) -> Scorer:
    """The champion's scores through the serving layer (loaded once per process)."""

    def score(version: int, table: pa.Table) -> np.ndarray:
        from loopline.serving.cache import served_model
        from loopline.serving.inputs import served_scores

        serve = served_model(spec.name, version, lambda: registry)
        return served_scores(serve, table, spec.model)

    return score


def past_audits(store: ObjectStore, spec: PipelineSpec) -> list[PastAudit]:
    """Earlier audits of the pipeline, oldest first, as the decision needs them."""
    return [
        PastAudit(
            record.run_id,
            record.ended_at,
            record.numbers.get("drifted_share", 0.0),
            record.verdict == "retrain",
            record.payload.get("champion"),
        )
        for record in RecordStore(store, spec.data.bucket).records(spec.name, RecordStage.DRIFT)
        if record.subject == "run"
    ]


def _reference(
    store: ObjectStore,
    registry: ModelRegistry,
    spec: PipelineSpec,
    window: RunWindow,
    scorer: Scorer,
) -> Reference:
    if spec.drift.reference == "window":
        return window_reference(store, spec, window)
    return champion_reference(store, registry, spec, scorer)


def _verdict(
    store: ObjectStore,
    spec: PipelineSpec,
    window: str,
    keys: list[str],
    reference: Reference,
    current: BatchProfile,
    scorer: Scorer,
) -> Verdict:
    numeric, categorical = audited_columns(spec)
    threshold = spec.drift.feature_threshold
    drifts = {
        name: _column(name, reference.profile, current, threshold)
        for name in [*numeric, *categorical]
    }
    notes: list[str] = []
    prediction = _prediction_drift(store, spec, keys, reference, notes)
    quality = _quality(spec, reference, current, scorer, notes)
    return Verdict(
        window=window,
        reference=reference.description,
        reference_version=reference.version,
        rows=current.rows,
        batches=len(keys),
        features=[drifts[name] for name in spec.model.features.all if name in drifts],
        label=drifts.get(spec.model.label),
        prediction=prediction,
        quality=quality,
        notes=notes,
    )


def _column(
    name: str, reference: BatchProfile, current: BatchProfile, threshold: float | None
) -> ColumnDrift:
    try:
        return column_drift(name, reference.columns[name], current.columns[name], threshold)
    except SmallReference:
        # At 1,000 reference values or fewer Evidently tests the rows with a p-value; the
        # reference's sample holds all of them (up to 5,000 rows), the window's its sample:
        # the rows its report draws.
        categorical = isinstance(reference.columns[name], CategoryProfile)
        return sample_drift(
            name,
            _values(_sample(reference), name),
            _values(_sample(current), name),
            categorical,
            threshold,
        )


def _values(sample: pa.Table, name: str) -> np.ndarray:
    return pc.drop_null(sample.column(name)).to_numpy(zero_copy_only=False)


def _prediction_drift(
    store: ObjectStore,
    spec: PipelineSpec,
    keys: list[str],
    reference: Reference,
    notes: list[str],
) -> ColumnDrift | None:
    """The champion's scores in the window (batch scoring's committed output and the
    replicas' prediction log: Kafka, REST and gRPC) against its holdout scores."""
    batch, logged = spec.batch_inference, log_prefix(spec)
    if reference.predictions is None or (batch is None and logged is None):
        if reference.version is not None and batch is None and logged is None:
            notes.append("no batch_inference and no prediction log: prediction drift not measured")
        return None
    days = sorted({day for key in keys if (day := partition_date(key)) is not None})
    if not days:
        return None
    scored: list[str] = []
    if batch is not None:
        partitions = committed_partitions(
            store, spec.data.bucket, batch.output_prefix, days[0], days[-1]
        )
        scored = [f for p in partitions if p.model_version == reference.version for f in p.files]
    online: list[str] = []
    if logged is not None:
        found = logged_files(store, spec.data.bucket, logged, days, reference.version)
        online = [log_file.key for log_file in found]
    if not scored and not online:
        notes.append(
            f"no predictions of champion v{reference.version} dated {days[0]} .. {days[-1]}: "
            "prediction drift not measured (no batch scoring run and no logged prediction)"
        )
        return None
    notes.append(
        f"prediction drift over {len(scored)} batch output file(s) and {len(online)} "
        "prediction log file(s) (Kafka, REST, gRPC)"
    )
    scores = merge_all(_score_profile(store, spec.data.bucket, key) for key in scored + online)
    column = scores.columns[SCORE]
    # The champion's holdout may hold 1,000 scores or fewer: still a distance, said so.
    return column_drift(
        SCORE,
        reference.predictions,
        column,
        spec.drift.prediction_threshold,
        any_reference_size=True,
    )


def _score_profile(store: ObjectStore, bucket: str, key: str) -> BatchProfile:
    """The profile of a prediction file's scores, computed once and kept beside the others."""
    profile_key = PROFILES_PREFIX + key + STATISTICS_SUFFIX
    if (stored := store.get_if_exists(bucket, profile_key)) is not None:
        return BatchProfile.from_parquet(stored)
    scores = decode(store.get(bucket, key), FileFormat.PARQUET).select([SCORE])
    scores = scores.cast(pa.schema([(SCORE, pa.float64())]))
    profile = profile_table(scores, [SCORE], [])
    store.put(bucket, profile_key, profile.to_parquet(), CONTENT_TYPES[FileFormat.PARQUET])
    return profile


def _quality(
    spec: PipelineSpec,
    reference: Reference,
    current: BatchProfile,
    scorer: Scorer,
    notes: list[str],
) -> QualityCheck | None:
    from loopline.serving.evaluate import quality

    label, metric = spec.model.label, spec.promotion.metric
    sample = current.sample
    if reference.version is None or reference.holdout_metric is None:
        return None
    if sample is None or label not in sample.column_names:
        notes.append("the current rows carry no label: quality not measured")
        return None
    labelled = sample.filter(pc.is_valid(sample.column(label)))
    labels = labelled.column(label).to_numpy().astype(np.float32)
    if len(np.unique(labels)) < 2:
        notes.append(f"the window's {len(labels)} labelled sample rows hold one class: no {metric}")
        return None
    scores = scorer(reference.version, labelled)
    current_value = quality(labels, scores, [metric])[metric.value]
    return QualityCheck(metric.value, reference.holdout_metric, current_value, len(labels))


def _sample(profile: BatchProfile) -> pa.Table:
    if profile.sample is None:
        raise NoReference("a profile without a sample cannot be tested on its rows")
    return profile.sample
