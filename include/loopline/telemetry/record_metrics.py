"""Loopline's records as Prometheus metrics, per pipeline.

Read incrementally: each pass lists a pipeline's records (key and ETag), parses only those
that are new or rewritten (a retried task writes its record again), at most `budget` of them
per pass, and keeps a small summary of each (`RecordFacts`). The metric families are built
from the summaries once per pass, so a scrape renders what the last pass built and costs no
S3 call; a backlog (a stack with months of records) is read over several passes, and
``loopline_telemetry_records_pending`` says how much is left.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import ValidationError

from loopline.records.envelope import RecordStage, StageRecord
from loopline.records.store import RecordStore

log = logging.getLogger(__name__)

# The families this module exports: the dashboard may use these names and no others of ours.
RECORD_METRICS = (
    "loopline_records_total",
    "loopline_last_record_timestamp_seconds",
    "loopline_validation_files_total",
    "loopline_validation_rows_total",
    "loopline_validation_runs_total",
    "loopline_drift_audits_total",
    "loopline_drift_last_verdict",
    "loopline_drift_score",
    "loopline_drift_threshold",
    "loopline_drift_drifted",
    "loopline_drift_drifted_share",
    "loopline_promotion_decisions_total",
    "loopline_alias_moves_total",
    "loopline_champion_version",
    "loopline_streaming_lag",
    "loopline_streaming_p99_latency_seconds",
    "loopline_streaming_replicas",
    "loopline_streaming_decisions_total",
    "loopline_task_tries_total",
    "loopline_task_wall_seconds_total",
    "loopline_task_cpu_seconds_total",
    "loopline_task_failures_total",
)


@dataclass(frozen=True)
class FeatureDrift:
    """One column's score in a drift audit."""

    column: str
    kind: str  # feature, label or prediction
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class RecordFacts:
    """What one record contributes to the metrics: small, so months of records fit."""

    stage: str
    subject: str
    verdict: str
    ended_at: float  # seconds since the epoch
    numbers: Mapping[str, float] = field(default_factory=dict)
    dag_id: str | None = None
    task_id: str | None = None
    drift: tuple[FeatureDrift, ...] = ()


def facts_of(record: StageRecord) -> RecordFacts:
    """The summary of `record`; a drift record's payload must hold the verdict's scores."""
    return RecordFacts(
        stage=str(record.stage),
        subject=record.subject,
        verdict=record.verdict,
        ended_at=record.ended_at.timestamp(),
        numbers=dict(record.numbers),
        dag_id=record.dag_id,
        task_id=record.task_id,
        drift=_drift_scores(record.payload) if record.stage == RecordStage.DRIFT else (),
    )


def _drift_scores(payload: Mapping[str, Any]) -> tuple[FeatureDrift, ...]:
    verdict = payload.get("verdict")
    if not verdict:  # a skipped audit or the report's record: no scores
        return ()
    columns = [("feature", column) for column in verdict["features"]]
    columns += [(kind, verdict[kind]) for kind in ("label", "prediction") if verdict.get(kind)]
    return tuple(
        FeatureDrift(
            column=str(column["column"]),
            kind=kind,
            method=str(column["method"]),
            score=float(column["score"]),
            threshold=float(column["threshold"]),
            drifted=bool(column["drifted"]),
        )
        for kind, column in columns
    )


@dataclass
class PassResult:
    parsed: int = 0
    pending: int = 0
    bad: int = 0


class PipelineRecords:
    """The facts of one pipeline's records, kept up to date a bounded pass at a time."""

    def __init__(self, records: RecordStore, pipeline: str, budget: int = 500) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 record per pass, not {budget}")
        self.records, self.pipeline, self.budget = records, pipeline, budget
        # key -> (ETag, facts); None for a key that is not a record (logged once per ETag)
        self._known: dict[str, tuple[str, RecordFacts | None]] = {}

    def refresh(self) -> PassResult:
        listing = dict(self._listing())
        for gone in set(self._known) - set(listing):
            del self._known[gone]
        todo = [key for key, etag in sorted(listing.items()) if self._etag(key) != etag]
        result = PassResult(pending=max(len(todo) - self.budget, 0))
        for key in todo[: self.budget]:
            facts = self._read(key)
            self._known[key] = (listing[key], facts)
            result.parsed += 1
            result.bad += facts is None
        return result

    def facts(self) -> list[RecordFacts]:
        return [facts for _, facts in self._known.values() if facts is not None]

    def bad_records(self) -> int:
        return sum(facts is None for _, facts in self._known.values())

    def _etag(self, key: str) -> str | None:
        known = self._known.get(key)
        return known[0] if known else None

    def _listing(self) -> Iterator[tuple[str, str]]:
        """(key, ETag) of every record: the ETag tells a rewritten record from a known one."""
        store, bucket = self.records.store, self.records.bucket
        paginator = store.client.get_paginator("list_objects_v2")
        prefix = self.records.stage_prefix(self.pipeline)
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith(".json"):
                    yield item["Key"], item["ETag"]

    def _read(self, key: str) -> RecordFacts | None:
        """The record's facts; None (logged with the key and why) for an object that is not
        a record, so one bad object does not hide every other record."""
        bucket = self.records.bucket
        try:
            return facts_of(StageRecord.model_validate_json(self.records.store.get(bucket, key)))
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            log.error("s3://%s/%s is not a stage record Loopline can read: %s", bucket, key, exc)
            return None


# ------------------------------------------------------------------ metric families


def record_families(
    facts: Mapping[str, Iterable[RecordFacts]], champions: Mapping[str, int | None]
) -> list[Metric]:
    """Every family of RECORD_METRICS, from each pipeline's record facts and its champion
    version (None: no champion yet)."""
    families = _Families()
    for pipeline, pipeline_facts in sorted(facts.items()):
        by_stage: dict[str, list[RecordFacts]] = defaultdict(list)
        for fact in pipeline_facts:
            by_stage[fact.stage].append(fact)
        for stage, stage_facts in sorted(by_stage.items()):
            families.add("loopline_records_total", [pipeline, stage], len(stage_facts))
            last = max(fact.ended_at for fact in stage_facts)
            families.add("loopline_last_record_timestamp_seconds", [pipeline, stage], last)
        _validation(families, pipeline, by_stage[RecordStage.VALIDATION])
        _drift(families, pipeline, by_stage[RecordStage.DRIFT])
        _promotion(families, pipeline, by_stage)
        _streaming(families, pipeline, by_stage[RecordStage.STREAMING])
        _tasks(families, pipeline, by_stage[RecordStage.COST], by_stage[RecordStage.FAILURE])
        if champions.get(pipeline) is not None:
            families.add("loopline_champion_version", [pipeline], champions[pipeline] or 0)
    return families.all()


def _validation(families: _Families, pipeline: str, facts: list[RecordFacts]) -> None:
    files = [fact for fact in facts if fact.subject != "run"]
    for verdict, count in sorted(Counter(fact.verdict for fact in files).items()):
        families.add("loopline_validation_files_total", [pipeline, verdict], count)
    for outcome in ("accepted", "rejected"):
        rows = sum(fact.numbers.get(f"{outcome}_rows", 0.0) for fact in files)
        families.add("loopline_validation_rows_total", [pipeline, outcome], rows)
    runs = Counter(fact.verdict for fact in facts if fact.subject == "run")
    for verdict, count in sorted(runs.items()):
        families.add("loopline_validation_runs_total", [pipeline, verdict], count)


def _drift(families: _Families, pipeline: str, facts: list[RecordFacts]) -> None:
    audits = [fact for fact in facts if fact.subject == "run"]  # not the reports' records
    for verdict, count in sorted(Counter(fact.verdict for fact in audits).items()):
        families.add("loopline_drift_audits_total", [pipeline, verdict], count)
    if not audits:
        return
    latest = max(audits, key=lambda fact: fact.ended_at)
    families.add("loopline_drift_last_verdict", [pipeline, latest.verdict], 1)
    scored = [fact for fact in audits if fact.drift]
    if not scored:
        return
    newest = max(scored, key=lambda fact: fact.ended_at)  # the last audit that scored
    for column in newest.drift:
        labels = [pipeline, column.column, column.kind, column.method]
        families.add("loopline_drift_score", labels, column.score)
        families.add("loopline_drift_threshold", labels, column.threshold)
        families.add("loopline_drift_drifted", labels, float(column.drifted))
    if "drifted_share" in newest.numbers:
        families.add("loopline_drift_drifted_share", [pipeline], newest.numbers["drifted_share"])


def _promotion(
    families: _Families, pipeline: str, by_stage: Mapping[str, list[RecordFacts]]
) -> None:
    decisions = Counter(fact.verdict for fact in by_stage[RecordStage.JUDGEMENT])
    for verdict, count in sorted(decisions.items()):
        families.add("loopline_promotion_decisions_total", [pipeline, verdict], count)
    moves = by_stage[RecordStage.PROMOTION] + by_stage[RecordStage.ROLLBACK]
    for verdict, count in sorted(Counter(fact.verdict for fact in moves).items()):
        families.add("loopline_alias_moves_total", [pipeline, verdict], count)


def _streaming(families: _Families, pipeline: str, facts: list[RecordFacts]) -> None:
    actions = Counter((fact.subject, fact.verdict) for fact in facts)
    for (subject, verdict), count in sorted(actions.items()):
        families.add("loopline_streaming_decisions_total", [pipeline, subject, verdict], count)
    scaling = [fact for fact in facts if fact.subject == "scaling"]
    if not scaling:
        return
    latest = max(scaling, key=lambda fact: fact.ended_at).numbers
    if "total_lag" in latest:
        families.add("loopline_streaming_lag", [pipeline], latest["total_lag"])
    for window, number in (("60s", "p99_stable_ms"), ("6s", "p99_panic_ms")):
        if number in latest:
            seconds = latest[number] / 1000
            families.add("loopline_streaming_p99_latency_seconds", [pipeline, window], seconds)
    for kind in ("current", "desired"):
        if kind in latest:
            families.add("loopline_streaming_replicas", [pipeline, kind], latest[kind])


def _tasks(
    families: _Families, pipeline: str, costs: list[RecordFacts], failures: list[RecordFacts]
) -> None:
    tries: Counter[tuple[str, str, str]] = Counter()
    seconds: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for fact in costs:
        dag, task = fact.dag_id or "", fact.task_id or fact.subject.split(".")[0]
        tries[(dag, task, fact.verdict)] += 1
        seconds[(dag, task)][0] += fact.numbers.get("wall_seconds", 0.0)
        seconds[(dag, task)][1] += fact.numbers.get("cpu_seconds", 0.0)
    for (dag, task, outcome), count in sorted(tries.items()):
        families.add("loopline_task_tries_total", [pipeline, dag, task, outcome], count)
    for (dag, task), (wall, cpu) in sorted(seconds.items()):
        families.add("loopline_task_wall_seconds_total", [pipeline, dag, task], wall)
        families.add("loopline_task_cpu_seconds_total", [pipeline, dag, task], cpu)
    failed = Counter((fact.dag_id or "", fact.task_id or "", fact.verdict) for fact in failures)
    for (dag, task, verdict), count in sorted(failed.items()):
        families.add("loopline_task_failures_total", [pipeline, dag, task, verdict], count)


# name -> (help, labels); a counter's name ends in _total here, as Prometheus shows it.
_SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "loopline_records_total": ("Records written, by stage", ("pipeline", "stage")),
    "loopline_last_record_timestamp_seconds": (
        "When the newest record of a stage ended",
        ("pipeline", "stage"),
    ),
    "loopline_validation_files_total": (
        "Landed files the validation gate judged, by where they went "
        "(validated, split, quarantined)",
        ("pipeline", "verdict"),
    ),
    "loopline_validation_rows_total": (
        "Rows of judged files accepted into the validated zone or rejected",
        ("pipeline", "outcome"),
    ),
    "loopline_validation_runs_total": (
        "Validation runs, by verdict (passed, failed)",
        ("pipeline", "verdict"),
    ),
    "loopline_drift_audits_total": (
        "Drift audits, by decision (retrain, held, within_limits, skipped)",
        ("pipeline", "verdict"),
    ),
    "loopline_drift_last_verdict": (
        "1 for the latest drift audit's decision",
        ("pipeline", "verdict"),
    ),
    "loopline_drift_score": (
        "Each column's drift score in the latest audit that scored",
        ("pipeline", "column", "kind", "method"),
    ),
    "loopline_drift_threshold": (
        "The threshold each column's score was held to in that audit",
        ("pipeline", "column", "kind", "method"),
    ),
    "loopline_drift_drifted": (
        "1 where that audit found the column drifted",
        ("pipeline", "column", "kind", "method"),
    ),
    "loopline_drift_drifted_share": ("Share of features drifted in that audit", ("pipeline",)),
    "loopline_promotion_decisions_total": (
        "Judgements of trained versions (promote, refuse)",
        ("pipeline", "verdict"),
    ),
    "loopline_alias_moves_total": (
        "Alias moves: champion, challenger, rolled_back",
        ("pipeline", "verdict"),
    ),
    "loopline_champion_version": ("The registry's champion version", ("pipeline",)),
    "loopline_streaming_lag": (
        "Committed lag of the consumer group at the monitor's last scaling decision",
        ("pipeline",),
    ),
    "loopline_streaming_p99_latency_seconds": (
        "Worst replica p99 latency at that decision, per window",
        ("pipeline", "window"),
    ),
    "loopline_streaming_replicas": (
        "Replicas at that decision (current) and what it asked for (desired)",
        ("pipeline", "kind"),
    ),
    "loopline_streaming_decisions_total": (
        "Streaming records: deploy, roll, scale, stop, replace, scaling, health; by verdict",
        ("pipeline", "subject", "verdict"),
    ),
    "loopline_task_tries_total": (
        "Task tries with a cost record, by outcome",
        ("pipeline", "dag_id", "task_id", "outcome"),
    ),
    "loopline_task_wall_seconds_total": (
        "Wall seconds of task tries, from their cost records",
        ("pipeline", "dag_id", "task_id"),
    ),
    "loopline_task_cpu_seconds_total": (
        "CPU seconds of task tries, from their cost records",
        ("pipeline", "dag_id", "task_id"),
    ),
    "loopline_task_failures_total": (
        "Failed task tries (failed, up_for_retry), from their failure records",
        ("pipeline", "dag_id", "task_id", "verdict"),
    ),
}
assert set(_SHAPES) == set(RECORD_METRICS), "every exported family needs its shape"


class _Families:
    """The families being built, each with its samples in the order they were added."""

    def __init__(self) -> None:
        self._samples: dict[str, list[tuple[list[str], float]]] = defaultdict(list)

    def add(self, name: str, labels: list[str], value: float) -> None:
        expected = _SHAPES[name][1]
        if len(labels) != len(expected):
            raise ValueError(f"{name} takes labels {expected}, got {labels}")
        self._samples[name].append((labels, float(value)))

    def all(self) -> list[Metric]:
        families: list[Metric] = []
        for name in RECORD_METRICS:
            doc, labels = _SHAPES[name]
            family: CounterMetricFamily | GaugeMetricFamily
            if name.endswith("_total"):
                family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)
            else:
                family = GaugeMetricFamily(name, doc, labels=labels)
            for values, value in self._samples.get(name, []):
                family.add_metric(values, value)
            families.append(family)
        return families
