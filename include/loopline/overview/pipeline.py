"""One pipeline at a glance: its models, decisions, data checks, drift, deployments, cost and
failures, as the Loopline view in the Airflow UI shows them.

Everything comes from the registry and the stage records (the newest page of each stage,
`RecordStore.latest`), never from objects read by hand, so the view shows what the CLI and
the DAGs recorded. Reports are not inlined: each entry that has one says so, and
`loopline.overview.reports` serves it by its record.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from loopline.records import RecordStage, RecordStore, StageRecord
from loopline.records.cost import summarize
from loopline.registry import CHALLENGER, CHAMPION, ModelRegistry

if TYPE_CHECKING:
    from loopline.registry import ModelVersion
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

PAGE = 20  # records of each stage read for the view: the newest ones
TOP_FEATURES = 8  # features of a version's importance shown
COST_PAGES = 10  # cost records: one per task try, so more of them (the newest 200 tries)


class VersionRow(BaseModel):
    version: int
    created_at: datetime
    alias: str  # champion, challenger or ""
    metrics: dict[str, float]
    device: str
    run_id: str
    importance: list[tuple[str, float]]  # (feature, share of the total), the top ones


class AliasMoveRow(BaseModel):
    alias: str
    sequence: int
    version: int
    previous: int | None
    action: str
    reason: str
    at: datetime
    by: str


class Decision(BaseModel):
    """One record, as the view lists it: what was decided, when, with its reasons."""

    stage: str
    subject: str
    run_id: str
    dag_id: str | None
    verdict: str
    reasons: list[str]
    numbers: dict[str, float]
    ended_at: datetime
    report: bool = False  # a report can be fetched for it (`read_report`)


class FeatureDrift(BaseModel):
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


class DriftPoint(BaseModel):
    run_id: str
    ended_at: datetime
    verdict: str  # retrain, within_limits, skipped...
    drifted_share: float | None
    features: list[FeatureDrift]
    report: bool


class DeploymentState(BaseModel):
    actions: list[Decision]  # deploy, roll, scale, stop, shadow, monitor passes: newest last
    replicas: dict[str, int | None]  # slot -> the version it serves, from the newest action
    lag: float | None  # the newest monitor pass's numbers: committed lag of every partition,
    p99_ms: float | None  # the replicas' p99 over the stable window (Kafka, or the endpoint's)


class StageCost(BaseModel):
    stage: str
    tasks: int
    wall_seconds: float
    cpu_seconds: float
    gpu_seconds: float
    peak_rss_mib: float
    bytes_read: int
    bytes_written: int


class Failure(BaseModel):
    run_id: str
    dag_id: str | None
    task: str
    state: str  # failed, or up_for_retry
    ended_at: datetime
    error: str
    bundle: str | None  # the debug bundle's URI (``loopline debug`` reads it)
    log: str | None  # the task log in the Airflow UI


class PipelineOverview(BaseModel):
    name: str
    champion: int | None
    challenger: int | None
    versions: list[VersionRow]
    alias_history: list[AliasMoveRow]
    promotions: list[Decision]  # judgements, promotions, rollbacks, shadow verdicts
    validations: list[Decision]  # runs and files, newest last
    drift: list[DriftPoint]  # audits, oldest first: the chart's points
    deployment: DeploymentState
    cost: list[StageCost]
    failures: list[Failure]


def pipeline_overview(spec: PipelineSpec, store: ObjectStore, page: int = PAGE) -> PipelineOverview:
    """Everything the view shows of `spec`'s pipeline, from its registry and records."""
    registry = ModelRegistry(store, spec.data.bucket)
    records = RecordStore(store, spec.data.bucket)
    name = spec.name

    def latest(stage: RecordStage, limit: int = page) -> list[StageRecord]:
        return records.latest(name, stage, limit)

    champion, challenger = registry.alias(name, CHAMPION), registry.alias(name, CHALLENGER)
    decided = [
        *latest(RecordStage.JUDGEMENT),
        *latest(RecordStage.PROMOTION),
        *latest(RecordStage.ROLLBACK),
        *latest(RecordStage.SHADOW),
    ]
    return PipelineOverview(
        name=name,
        champion=champion,
        challenger=challenger,
        versions=[_version_row(v, champion, challenger) for v in _versions(registry, name, page)],
        alias_history=_alias_history(registry, name, page),
        promotions=[_decision(r) for r in _by_time(decided)[-page:]],
        validations=[_decision(r, report=_has_report(r)) for r in latest(RecordStage.VALIDATION)],
        drift=[_drift_point(r) for r in latest(RecordStage.DRIFT) if r.subject == "run"],
        deployment=_deployment(latest(RecordStage.STREAMING)),
        cost=_cost(latest(RecordStage.COST, limit=page * COST_PAGES)),
        failures=[_failure(r) for r in latest(RecordStage.FAILURE)][::-1],
    )


def _versions(registry: ModelRegistry, name: str, page: int) -> list[ModelVersion]:
    """The newest page of versions, newest first, and the champion and challenger wherever
    they are (a champion can be older than the last `page` candidates)."""
    shown = registry.versions(name, newest=page)
    numbers = {version.version for version in shown}
    aliased = [registry.alias(name, CHAMPION), registry.alias(name, CHALLENGER)]
    shown += [registry.get(name, n) for n in aliased if n is not None and n not in numbers]
    return sorted(shown, key=lambda version: -version.version)


def _version_row(record: ModelVersion, champion: int | None, challenger: int | None) -> VersionRow:
    alias = {champion: CHAMPION, challenger: CHALLENGER}.get(record.version, "")
    shares = record.importance.shares() if record.importance is not None else {}
    top = sorted(shares.items(), key=lambda item: -item[1])[:TOP_FEATURES]
    return VersionRow(
        version=record.version,
        created_at=record.created_at,
        alias=alias,
        metrics=record.metrics,
        device=str(record.training.get("device", "?")),
        run_id=record.lineage.get("run_id", "-"),
        importance=[(feature, round(share, 4)) for feature, share in top],
    )


def _alias_history(registry: ModelRegistry, name: str, page: int) -> list[AliasMoveRow]:
    moves = [
        AliasMoveRow(alias=alias, **move.model_dump())
        for alias in (CHAMPION, CHALLENGER)
        for move in registry.history(name, alias)
    ]
    return sorted(moves, key=lambda move: move.at)[-page:]


def _by_time(records: list[StageRecord]) -> list[StageRecord]:
    return sorted(records, key=lambda record: (record.ended_at, record.started_at))


def _decision(record: StageRecord, report: bool = False) -> Decision:
    return Decision(
        stage=str(record.stage),
        subject=record.subject,
        run_id=record.run_id,
        dag_id=record.dag_id,
        verdict=record.verdict,
        reasons=record.reasons[:5],
        numbers=record.numbers,
        ended_at=record.ended_at,
        report=report,
    )


def _has_report(record: StageRecord) -> bool:
    return bool(record.payload.get("report_key"))


def _drift_point(record: StageRecord) -> DriftPoint:
    verdict: dict[str, Any] = record.payload.get("verdict") or {}
    features = [
        FeatureDrift(
            column=str(column["column"]),
            method=str(column.get("method", "")),
            score=float(column["score"]),
            threshold=float(column.get("threshold", 0.0)),
            drifted=bool(column.get("drifted")),
        )
        for column in verdict.get("features", [])
        if isinstance(column, dict) and "column" in column and "score" in column
    ]
    return DriftPoint(
        run_id=record.run_id,
        ended_at=record.ended_at,
        verdict=record.verdict,
        drifted_share=record.numbers.get("drifted_share"),
        features=features,
        report=bool(record.payload.get("report")),
    )


def _deployment(actions: list[StageRecord]) -> DeploymentState:
    with_replicas = [r for r in actions if isinstance(r.payload.get("replicas"), dict)]
    replicas = with_replicas[-1].payload["replicas"] if with_replicas else {}
    monitored = [r for r in actions if "total_lag" in r.numbers]
    numbers = monitored[-1].numbers if monitored else {}
    latencies = [numbers[k] for k in ("p99_stable_ms", "endpoint_p99_stable_ms") if k in numbers]
    return DeploymentState(
        actions=[_decision(r) for r in actions],
        replicas={str(slot): version for slot, version in replicas.items()},
        lag=numbers.get("total_lag"),
        p99_ms=max(latencies) if latencies else None,
    )


def _cost(costs: list[StageRecord]) -> list[StageCost]:
    summary = summarize(costs, [])
    return [
        StageCost(
            stage=stage,
            tasks=totals.tasks,
            wall_seconds=round(totals.wall_seconds, 3),
            cpu_seconds=round(totals.cpu_seconds, 3),
            gpu_seconds=round(totals.gpu_seconds, 3),
            peak_rss_mib=round(totals.peak_rss_mib, 1),
            bytes_read=totals.bytes_read,
            bytes_written=totals.bytes_written,
        )
        for stage, totals in sorted(summary.by_stage.items())
    ]


def _failure(record: StageRecord) -> Failure:
    return Failure(
        run_id=record.run_id,
        dag_id=record.dag_id,
        task=record.subject,
        state=record.verdict,
        ended_at=record.ended_at,
        error=record.reasons[0] if record.reasons else record.payload.get("error", "?"),
        bundle=record.payload.get("bundle"),
        log=record.payload.get("log"),
    )
