"""Judge a registered candidate against the champion, then apply the judgement.

Both models are measured on the same holdout from the registry's own files (checksums
verified: a corrupt file fails here, before any promotion). Applying is retry-safe: an alias
move already made by the same caller (the same Airflow run) is returned, never made twice.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from loopline.promotion.gates import Decision, Measurement, decide
from loopline.records import RecordStage, RecordStore, RunContext, StageRecord
from loopline.registry import CHALLENGER, CHAMPION, AliasMove, ModelRegistry
from loopline.registry.importance import ImportanceShift, importance_shift
from loopline.serving.artifacts import MODEL_FILE, load_model
from loopline.serving.evaluate import evaluate, size_mb
from loopline.spec.sections import PipelineSpec

log = logging.getLogger(__name__)


class Judgement(BaseModel):
    """A candidate's verdict against the champion it was judged with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    champion: int | None  # the champion it was judged against
    decision: Decision
    # Which features moved the model: the candidate's stored importance against the
    # champion's (None: no champion to compare with). Read from the registry, never computed.
    importance_shift: ImportanceShift | None = None

    @property
    def alias(self) -> str:
        """The alias the candidate goes to: champion if it passed, else challenger."""
        return CHAMPION if self.decision.promote else CHALLENGER

    def summary(self) -> str:
        return self.decision.summary()


def judge(
    registry: ModelRegistry,
    spec: PipelineSpec,
    version: int,
    holdout: pa.Table,
    run: RunContext | None = None,
) -> Judgement:
    """Measure the candidate and the current champion on `holdout` and decide; with a `run`,
    the judgement is recorded (refusals as explicitly as promotions)."""
    champion = registry.alias(spec.name, CHAMPION)
    candidate = measure(registry, spec, version, holdout)
    incumbent = None
    if champion is not None and champion != version:
        incumbent = measure(registry, spec, champion, holdout)
    decision = decide(candidate, incumbent, spec.promotion)
    shift = None
    if incumbent is not None and champion is not None:
        shift = _shift(registry, spec.name, version, champion)
    log.info(
        "%s v%d against champion %s:\n%s\n%s",
        spec.name,
        version,
        champion,
        decision.summary(),
        shift.describe() if shift else "no champion: no importance shift",
    )
    judgement = Judgement(
        version=version, champion=champion, decision=decision, importance_shift=shift
    )
    if run is not None:
        record_judgement(registry, judgement, candidate, incumbent, run)
    return judgement


def _shift(registry: ModelRegistry, name: str, version: int, champion: int) -> ImportanceShift:
    """Which features moved the model, from the importances stored with both versions."""
    return importance_shift(
        registry.get(name, version).importance, registry.get(name, champion).importance
    )


def record_judgement(
    registry: ModelRegistry,
    judgement: Judgement,
    candidate: Measurement,
    incumbent: Measurement | None,
    run: RunContext,
) -> StageRecord:
    """Write the judgement's record (``judgement/<run>/v<N>``, verdict promote or refuse):
    what a manual promotion and the streaming deployment check a version against
    (``loopline.registry.judgements``)."""
    numbers = {f"candidate_{k}": v for k, v in candidate.metrics.items()}
    if incumbent is not None:
        numbers |= {f"champion_{k}": v for k, v in incumbent.metrics.items()}
    numbers |= {"p99_latency_ms": candidate.p99_latency_ms, "size_mb": candidate.size_mb}
    record = run.record(
        RecordStage.JUDGEMENT,
        "promote" if judgement.decision.promote else "refuse",
        subject=f"v{judgement.version}",
        reasons=judgement.decision.reasons,
        numbers=numbers,
        payload=judgement.model_dump(mode="json"),
    )
    RecordStore(registry.store, registry.bucket).write(record)
    return record


def apply_judgement(
    registry: ModelRegistry, spec: PipelineSpec, judgement: Judgement, run: RunContext
) -> AliasMove:
    """Promote a passing candidate (only if the champion is still the one it beat), or point
    the challenger alias at a refused one, with its reasons; recorded either way. A move this
    run already made (an earlier try) is returned instead of made again."""
    alias = target_alias(spec, judgement)
    move = registry.last_move_by(spec.name, alias, run.by)
    if move is None:
        move = _move(registry, spec, judgement, alias, by=run.by)
    shift = judgement.importance_shift
    record = run.record(
        RecordStage.PROMOTION,
        alias,
        reasons=[move.reason, *([shift.describe()] if shift else [])],
        numbers={"version": move.version, "previous": move.previous or 0},
        payload={"move": move.model_dump(mode="json"), **judgement.model_dump(mode="json")},
    )
    RecordStore(registry.store, registry.bucket).write(record)
    return move


def roll_back_champion(
    registry: ModelRegistry, spec: PipelineSpec, reason: str, run: RunContext
) -> AliasMove:
    """Restore the champion before the last promotion (once per run, whatever its retries:
    a second rollback would walk back one promotion too many)."""
    move = registry.last_move_by(spec.name, CHAMPION, run.by)
    if move is None or move.action != "rollback":
        move = registry.rollback(spec.name, reason=reason, by=run.by)
    record = run.record(
        RecordStage.ROLLBACK,
        "rolled_back",
        reasons=[reason],
        numbers={"version": move.version, "previous": move.previous or 0},
        payload=move.model_dump(mode="json"),
    )
    RecordStore(registry.store, registry.bucket).write(record)
    return move


def target_alias(spec: PipelineSpec, judgement: Judgement) -> str:
    """Where a judged candidate goes: champion if it passed, unless ``promotion.shadow`` wants
    it judged on live traffic first (then challenger, until a shadow verdict passes; a first
    model, with no champion to compare with, is promoted)."""
    if judgement.alias == CHAMPION and awaits_shadow(spec, judgement):
        return CHALLENGER
    return judgement.alias


def awaits_shadow(spec: PipelineSpec, judgement: Judgement) -> bool:
    return (
        spec.promotion.shadow is not None
        and judgement.decision.promote
        and judgement.champion is not None
    )


AWAITING_SHADOW = (
    "passed the offline gate; waits as challenger for a passing shadow verdict on live "
    "traffic (promotion.shadow): `loopline stream shadow`, then `loopline models shadow`"
)


def _move(
    registry: ModelRegistry, spec: PipelineSpec, judgement: Judgement, alias: str, by: str
) -> AliasMove:
    if alias == CHAMPION:
        reason = "beat champion" if judgement.champion else "first model above thresholds"
        return registry.move_alias(
            spec.name,
            CHAMPION,
            judgement.version,
            expected=judgement.champion,
            action="promote",
            reason=reason,
            by=by,
        )
    return registry.move_alias(
        spec.name,
        CHALLENGER,
        judgement.version,
        expected=registry.alias(spec.name, CHALLENGER),
        action="set",
        reason=AWAITING_SHADOW
        if judgement.decision.promote
        else "; ".join(judgement.decision.reasons),
        by=by,
    )


def measure(
    registry: ModelRegistry, spec: PipelineSpec, version: int, holdout: pa.Table
) -> Measurement:
    """One registered version on the holdout, from its verified files."""
    record = registry.get(spec.name, version)
    with tempfile.TemporaryDirectory(prefix="loopline-judge-") as folder:
        registry.download(spec.name, version, Path(folder))
        model = load_model(folder)
        evaluation = evaluate(model, holdout, spec.model, spec.training.metrics)
        size = size_mb(Path(folder) / MODEL_FILE)
    return Measurement(evaluation.metrics, evaluation.p99_latency_ms, size, record.input_schema)
