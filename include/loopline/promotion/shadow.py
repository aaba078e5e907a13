"""The shadow verdict: a challenger against the champion on the same live events.

The replicas scored a share of their live traffic with the challenger in shadow and, on the
same rows in the same thread, with the champion (`loopline.streaming.shadow`); both are in
the prediction log. The verdict pairs them by event or request id and checks, against
``promotion.shadow``:

- enough pairs (`min_pairs`): fewer is "pending", not a failure;
- agreement: the share of events both put on the same side of `decision_threshold`;
- score shift: the Wasserstein-1 distance between the two score distributions;
- latency: the challenger's p99 per scoring call over the champion's, timed the same way;
- errors: the share of events the challenger failed to score.

It is recorded (stage ``shadow``, verdict pass, fail or pending, with its numbers and reasons)
and a promotion under ``promotion.shadow`` requires the newest one for the version to pass.

The ``<pipeline>.shadow`` DAG runs the loop: the challenger that awaits a verdict
(`challenger_awaiting_verdict`), its verdict recorded (`judge_and_record_shadow`), and on a
pass its promotion under the checks of ``loopline models promote`` (`promote_shadow_winner`).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from loopline.data.prediction_log import SHADOW, SHADOW_CHAMPION, log_prefix, logged_files
from loopline.records import RecordStage, RecordStore, RunContext, StageRecord
from loopline.registry import CHALLENGER, CHAMPION, AliasMove, ModelRegistry, RegistryError
from loopline.registry.judgements import latest_judgement, passed
from loopline.spec.sections import PipelineSpec, ShadowSpec
from loopline.storage.objects import ObjectStore

Verdict = Literal["pass", "fail", "pending"]


class ShadowVerdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    champion: int
    verdict: Verdict
    pairs: int
    numbers: dict[str, float]
    reasons: list[str]


def judge_shadow(
    store: ObjectStore, spec: PipelineSpec, version: int, champion: int, days: list[date]
) -> ShadowVerdict:
    """Pair the challenger's shadow scores of `days` with the champion's and decide."""
    rules, prefix = spec.promotion.shadow, log_prefix(spec)
    if rules is None or prefix is None:
        raise ValueError(f"{spec.name} has no promotion.shadow section (or logs no prediction)")
    theirs = _scores(store, spec.data.bucket, prefix, days, version, SHADOW)
    ours = _scores(store, spec.data.bucket, prefix, days, champion, SHADOW_CHAMPION)
    pairs = ours.join(theirs, "id", join_type="inner", left_suffix="_c", right_suffix="_s")
    return decide_shadow(version, champion, pairs, rules)


def _scores(
    store: ObjectStore, bucket: str, prefix: str, days: list[date], version: int, source: str
) -> pa.Table:
    """id, score, latency_ms of one version's shadow rows (one row per id: a redelivered event
    or a repeated request id is counted once)."""
    files = logged_files(store, bucket, prefix, days, version, (source,))
    columns = ["id", "score", "latency_ms"]
    tables = [pq.read_table(pa.BufferReader(store.get(bucket, f.key)), columns=columns)
              for f in files]  # fmt: skip
    if not tables:
        return pa.table({c: pa.array([], t) for c, t in
                         (("id", pa.string()), ("score", pa.float32()),
                          ("latency_ms", pa.float32()))})  # fmt: skip
    table = pa.concat_tables(tables)
    first = table.group_by("id", use_threads=False).aggregate(
        [("score", "first"), ("latency_ms", "first")]
    )
    return first.rename_columns(["id", "score", "latency_ms"])


def decide_shadow(version: int, champion: int, pairs: pa.Table, rules: ShadowSpec) -> ShadowVerdict:
    """The verdict on paired scores: columns score_c, score_s, latency_ms_c, latency_ms_s."""
    count = pairs.num_rows
    numbers: dict[str, float] = {"pairs": count, "min_pairs": rules.min_pairs}
    if count < rules.min_pairs:
        reason = (
            f"{count} event(s) scored by both so far; a verdict needs {rules.min_pairs} "
            "(promotion.shadow.min_pairs)"
        )
        return ShadowVerdict(version=version, champion=champion, verdict="pending",
                             pairs=count, numbers=numbers, reasons=[reason])  # fmt: skip
    ours = pairs.column("score_c").to_numpy(zero_copy_only=False).astype(float)
    theirs = pairs.column("score_s").to_numpy(zero_copy_only=False).astype(float)
    failed = ~np.isfinite(theirs)
    ours_ok, theirs_ok = ours[~failed], theirs[~failed]
    threshold = rules.decision_threshold
    numbers |= {
        "error_share": float(failed.mean()),
        "agreement": float(np.mean((ours_ok >= threshold) == (theirs_ok >= threshold)))
        if theirs_ok.size
        else 0.0,
        "score_shift": _wasserstein(ours_ok, theirs_ok),
        "champion_p99_ms": _p99(pairs, "latency_ms_c"),
        "challenger_p99_ms": _p99(pairs, "latency_ms_s"),
    }
    numbers["p99_ratio"] = numbers["challenger_p99_ms"] / max(numbers["champion_p99_ms"], 1e-9)
    checks = _checks(numbers, rules)
    verdict: Verdict = "pass" if all(ok for ok, _ in checks) else "fail"
    return ShadowVerdict(version=version, champion=champion, verdict=verdict, pairs=count,
                         numbers=numbers, reasons=[text for _, text in checks])  # fmt: skip


def _checks(numbers: dict[str, float], rules: ShadowSpec) -> list[tuple[bool, str]]:
    def check(ok: bool, text: str) -> tuple[bool, str]:
        return ok, f"{'ok' if ok else 'FAILED'}: {text}"

    return [
        check(numbers["agreement"] >= rules.min_agreement,
              f"agreement {numbers['agreement']:.4f} (same side of {rules.decision_threshold}) "
              f"must be >= {rules.min_agreement}"),
        check(numbers["score_shift"] <= rules.max_score_shift,
              f"score shift (Wasserstein-1) {numbers['score_shift']:.4f} must be <= "
              f"{rules.max_score_shift}"),
        check(numbers["p99_ratio"] <= rules.max_p99_ratio,
              f"p99 per call {numbers['challenger_p99_ms']:.2f} ms vs the champion's "
              f"{numbers['champion_p99_ms']:.2f} ms = {numbers['p99_ratio']:.2f}x, must be <= "
              f"{rules.max_p99_ratio}x"),
        check(numbers["error_share"] <= rules.max_error_share,
              f"errors on {numbers['error_share']:.2%} of events, at most "
              f"{rules.max_error_share:.2%}"),
    ]  # fmt: skip


def _wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    if not a.size or not b.size:
        return float("inf")
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a, b))


def _p99(pairs: pa.Table, column: str) -> float:
    values = pc.drop_null(pairs.column(column)).to_numpy(zero_copy_only=False)
    return float(np.percentile(values, 99)) if len(values) else 0.0


def record_shadow_verdict(
    store: ObjectStore, bucket: str, verdict: ShadowVerdict, run: RunContext
) -> StageRecord:
    record = run.record(
        RecordStage.SHADOW,
        verdict.verdict,
        subject=f"v{verdict.version}",
        reasons=verdict.reasons,
        numbers=verdict.numbers,
        payload=verdict.model_dump(mode="json"),
    )
    RecordStore(store, bucket).write(record)
    return record


def latest_shadow_verdict(
    store: ObjectStore, spec: PipelineSpec, version: int
) -> StageRecord | None:
    """The newest shadow verdict recorded for `version`, or None."""
    records = RecordStore(store, spec.data.bucket).records(spec.name, RecordStage.SHADOW)
    found = [record for record in records if record.payload.get("version") == version]
    return max(found, key=lambda r: (r.ended_at, r.started_at), default=None)


# -- the shadow DAG's steps (``<pipeline>.shadow``) ----------------------------------------
class AwaitingChallenger(BaseModel):
    """The challenger a shadow verdict is wanted for, or why there is none (`reason`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int | None
    champion: int | None
    reason: str


def challenger_awaiting_verdict(registry: ModelRegistry, spec: PipelineSpec) -> AwaitingChallenger:
    """The challenger whose judgement passed the offline gate against the current champion
    and has no final (pass or fail) shadow verdict against it yet. A final verdict ends its
    shadow: judging the same days again each hour would only repeat it."""
    champion = registry.alias(spec.name, CHAMPION)
    challenger = registry.alias(spec.name, CHALLENGER)

    def none(why: str) -> AwaitingChallenger:
        return AwaitingChallenger(version=None, champion=champion, reason=why)

    if champion is None or challenger is None or challenger == champion:
        return none(f"{spec.name} has no challenger beside a champion (v{champion})")
    judgement = latest_judgement(registry, spec.name, challenger)
    if not passed(judgement) or judgement is None:
        return none(f"challenger v{challenger} did not pass the offline gate")
    if judgement.payload.get("champion") != champion:
        against = judgement.payload.get("champion")
        return none(f"challenger v{challenger} was judged against v{against}, not v{champion}")
    verdict = latest_shadow_verdict(registry.store, spec, challenger)
    if (
        verdict is not None
        and verdict.verdict != "pending"
        and verdict.payload.get("champion") == champion
    ):
        return none(
            f"challenger v{challenger} already has a {verdict.verdict} shadow verdict against "
            f"v{champion} (run {verdict.run_id})"
        )
    why = f"challenger v{challenger} passed the offline gate against v{champion}"
    return AwaitingChallenger(version=challenger, champion=champion, reason=why)


def last_days(end: date, days: int) -> list[date]:
    """`days` days ending with `end` (at least that day), the prediction log's partitions."""
    return [end - timedelta(days=n) for n in range(max(days, 1))]


def judge_and_record_shadow(
    store: ObjectStore,
    spec: PipelineSpec,
    challenger: AwaitingChallenger,
    days: list[date],
    run: RunContext,
) -> ShadowVerdict:
    """`judge_shadow` for the awaiting challenger, recorded (pending too)."""
    if challenger.version is None or challenger.champion is None:
        raise ValueError(f"no challenger to judge: {challenger.reason}")
    verdict = judge_shadow(store, spec, challenger.version, challenger.champion, days)
    record_shadow_verdict(store, spec.data.bucket, verdict, run)
    return verdict


def promote_shadow_winner(
    registry: ModelRegistry, spec: PipelineSpec, version: int, run: RunContext
) -> AliasMove:
    """Champion for a challenger whose shadow verdict passed, held to the checks of
    ``loopline models promote`` (`manual_checks`: judged, its shadow verdict passed against
    this champion, not rolled back) but the approval: the shadow DAG asks a person in its
    approve task, before this one, whenever ``promotion.require_approval``. Recorded; a move
    this run already made (an earlier try) is returned instead of made again."""
    # manual imports this module (latest_shadow_verdict): imported here, not at the top
    from loopline.promotion.manual import manual_checks, record_promotion

    move = registry.last_move_by(spec.name, CHAMPION, run.by)
    if move is None:
        checks = manual_checks(registry, spec, version)
        failed = [c for c in checks if not c.passed and c.name != "approval"]
        if failed:
            lines = "; ".join(f"{check.name}: {check.detail}" for check in failed)
            raise RegistryError(f"{spec.name} v{version} not promoted: {lines}")
        champion = registry.alias(spec.name, CHAMPION)
        verdict = latest_shadow_verdict(registry.store, spec, version)
        won = f"passed its shadow verdict against v{champion} (run {verdict and verdict.run_id})"
        move = registry.move_alias(
            spec.name, CHAMPION, version, expected=champion, action="promote", reason=won, by=run.by
        )
    record_promotion(registry, spec, move, run, by=run.by)
    return move
