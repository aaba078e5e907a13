"""A promotion a person asks for (``loopline models promote``), held to the train DAG's rules.

The CLI does not measure models: it acts on the judgement the train DAG recorded for the
version, as the DAG's own promote task acts on its judge task's. Re-measuring here would
need TensorFlow in the CLI and the training run's snapshot, and would only repeat that
judgement. The checks, each a gate `Check` like the judge's:

- judged: the version's newest judgement passed every gate (its reasons if it did not);
- against this champion: it was judged against the version that is champion now. The DAG's
  promote moves only from that champion too (compare-and-swap); a pass against v3 says
  nothing about beating v6;
- not rolled back: the champion was never rolled back from it (someone took it out of
  service, with a reason);
- approval: with ``promotion.require_approval`` the approval is answered in the Airflow UI,
  by the spec's approvers, which a terminal cannot ask;
- shadow verdict: with ``promotion.shadow``, the version's newest shadow verdict on live
  traffic passed, against this champion.

A failed check refuses, with the reasons. ``force`` with a reason moves anyway; the promotion
record then says forced, the reason and the checks that failed. Who asked is the OS user of
the process's real uid at its host, never the environment ($USER, $LOGNAME are anyone's).
"""

from __future__ import annotations

import os
import pwd
import socket

from loopline.promotion.gates import Check
from loopline.promotion.shadow import latest_shadow_verdict
from loopline.records import RecordStage, RecordStore, RunContext, StageRecord
from loopline.registry import CHAMPION, AliasMove, ModelRegistry, RegistryError
from loopline.registry.importance import importance_shift
from loopline.registry.judgements import latest_judgement, passed
from loopline.spec.sections import PipelineSpec


class PromotionRefused(RegistryError):
    """A manual promotion that failed a check, and was not forced."""

    def __init__(self, name: str, version: int, failed: list[Check]) -> None:
        self.failed = failed
        lines = "\n".join(f"  - {check.name}: {check.detail}" for check in failed)
        super().__init__(
            f"{name} v{version} not promoted; failed checks:\n{lines}\n"
            'override with --force --reason "why" (recorded as a forced promotion)'
        )


def cli_actor() -> str:
    """``cli:<user>@<host>``: the user of the real uid, from the password database."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (some containers): the number is the truth
        user = f"uid{uid}"
    return f"cli:{user}@{socket.gethostname()}"


def manual_checks(registry: ModelRegistry, spec: PipelineSpec, version: int) -> list[Check]:
    """What the train DAG would have required of `version` before it became champion."""
    champion = registry.alias(spec.name, CHAMPION)
    judgement = latest_judgement(registry, spec.name, version)
    against = judgement.payload.get("champion") if judgement else None
    rollbacks = [
        f"rolled back {move.at:%Y-%m-%d %H:%M} by {move.by}: {move.reason}"
        for move in registry.history(spec.name, CHAMPION)
        if move.action == "rollback" and move.previous == version
    ]
    approval = spec.promotion.require_approval
    shadow = _shadow_check(registry, spec, version, champion)
    return [
        Check(name="judged", passed=passed(judgement), detail=_judged(judgement)),
        *([shadow] if shadow is not None else []),
        Check(
            name="against this champion",
            passed=judgement is not None and against == champion,
            detail=f"judged against v{against}, champion is v{champion}"
            if judgement
            else "no judgement",
        ),
        Check(name="not rolled back", passed=not rollbacks, detail="; ".join(rollbacks) or "never"),
        Check(
            name="approval",
            passed=not approval,
            detail="promotion.require_approval: approve in the Airflow UI (the train DAG's "
            "approve task)"
            if approval
            else "not required",
        ),
    ]


def _shadow_check(
    registry: ModelRegistry, spec: PipelineSpec, version: int, champion: int | None
) -> Check | None:
    """With ``promotion.shadow``: the version's newest shadow verdict passed, against this
    champion (none is needed for a first champion: there is nothing to compare with)."""
    if spec.promotion.shadow is None or champion is None:
        return None
    verdict = latest_shadow_verdict(registry.store, spec, version)
    if verdict is None:
        detail = "no shadow verdict: `loopline stream shadow`, then `loopline models shadow`"
        return Check(name="shadow verdict", passed=False, detail=detail)
    against = verdict.payload.get("champion")
    ok = verdict.verdict == "pass" and against == champion
    detail = f"{verdict.verdict} against v{against} in run {verdict.run_id}: " + "; ".join(
        verdict.reasons
    )
    return Check(name="shadow verdict", passed=ok, detail=detail)


def _judged(judgement: StageRecord | None) -> str:
    if judgement is None:
        return "no judgement record: the train DAG never judged this version"
    if passed(judgement):
        return f"passed every gate in run {judgement.run_id}"
    return f"refused in run {judgement.run_id}: {'; '.join(judgement.reasons)}"


def promote_manually(
    registry: ModelRegistry,
    spec: PipelineSpec,
    version: int,
    *,
    actor: str,
    reason: str = "",
    force: bool = False,
) -> tuple[AliasMove, StageRecord]:
    """Move the champion to `version` if every check passes, or if forced with a reason;
    the move and a promotion record say who, why, and what was overridden."""
    registry.get(spec.name, version)  # a missing version: "has no version N"
    current = registry.alias(spec.name, CHAMPION)
    if current == version:
        raise RegistryError(f"{spec.name} v{version} is already champion")
    if force and not reason.strip():
        raise RegistryError("--force needs --reason saying why the checks are overridden")
    failed = [check for check in manual_checks(registry, spec, version) if not check.passed]
    if failed and not force:
        raise PromotionRefused(spec.name, version, failed)
    forced = bool(failed)
    why = f"manual: {reason}" if reason else "manual"
    if forced:
        why = f"forced: {reason} (failed: {', '.join(c.name for c in failed)})"
    move = registry.move_alias(
        spec.name, CHAMPION, version, expected=current, action="promote", reason=why, by=actor
    )
    record = _record(registry, spec, move, actor, reason, failed)
    return move, record


def _record(
    registry: ModelRegistry,
    spec: PipelineSpec,
    move: AliasMove,
    actor: str,
    reason: str,
    failed: list[Check],
) -> StageRecord:
    run = RunContext(spec.name, f"cli__{move.at:%Y-%m-%dT%H:%M:%S.%f}", started_at=move.at)
    return record_promotion(
        registry, spec, move, run, failed, by=actor, forced=bool(failed), reason=reason
    )


def record_promotion(
    registry: ModelRegistry,
    spec: PipelineSpec,
    move: AliasMove,
    run: RunContext,
    failed: list[Check] | None = None,
    **payload: object,
) -> StageRecord:
    """The record of a promotion made outside the train DAG's judge (by a person here, or by
    the shadow DAG): the move, any check it was forced past, which features moved the model."""
    failed = failed or []
    shift = None
    if move.previous is not None:  # which features moved the model, as the DAG records it
        shift = importance_shift(
            registry.get(spec.name, move.version).importance,
            registry.get(spec.name, move.previous).importance,
        )
    record = run.record(
        RecordStage.PROMOTION,
        "forced" if failed else CHAMPION,
        subject=f"v{move.version}",
        reasons=[
            move.reason,
            *(f"{c.name}: {c.detail}" for c in failed),
            *([shift.describe()] if shift else []),
        ],
        numbers={"version": move.version, "previous": move.previous or 0},
        payload={
            **payload,
            "failed_checks": [c.model_dump() for c in failed],
            "move": move.model_dump(mode="json"),
            "importance_shift": shift.model_dump(mode="json") if shift else None,
        },
    )
    RecordStore(registry.store, registry.bucket).write(record)
    return record
