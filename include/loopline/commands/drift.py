"""``loopline drift history <pipeline>``: every audit's verdict and decision, oldest first,
with what the retraining it started came to (promoted, or kept as challenger and why)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from loopline.records import RecordStage, RecordStore, StageRecord

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

BAR = 10  # characters of the drifted-share bar


def print_drift_history(args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore) -> int:
    records = RecordStore(store, spec.data.bucket)
    audits = [r for r in records.records(spec.name, RecordStage.DRIFT) if r.subject == "run"]
    if not audits:
        print(f"{spec.name}: no drift audit yet")
        return 0
    if args.feature:
        return _feature_trend(audits, args.feature)
    print(f"{'ended (UTC)':16}  {'drifted share':>20}  {'label':6}  {'pred':>6}  "
          f"{'quality':>15}  {'decision':13}  retraining")  # fmt: skip
    for audit in audits:
        print(_line(audit, records, spec.name))
        for reason in audit.reasons[:2]:
            print(f"{'':18}- {reason[:160]}")
    return 0


def _line(audit: StageRecord, records: RecordStore, pipeline: str) -> str:
    numbers, verdict = audit.numbers, audit.payload.get("verdict", {})
    share = numbers.get("drifted_share")
    if share is None:  # skipped: nothing to compare
        blank = f"{'-':>20}  {'':6}  {'':>6}  {'':>15}"
        return f"{audit.ended_at:%Y-%m-%d %H:%M}  {blank}  {audit.verdict:13}"
    filled = round(share * BAR)
    drifted = f"{int(numbers['drifted_features'])}/{int(numbers['features'])}"
    bar = "#" * filled + "." * (BAR - filled)
    label = verdict.get("label") or {}
    prediction = numbers.get("prediction_score")
    quality = verdict.get("quality") or {}
    quality_text = (
        f"{quality['metric']} {quality['current']:.3f}/{quality['holdout']:.3f}" if quality else ""
    )
    return (
        f"{audit.ended_at:%Y-%m-%d %H:%M}  {drifted:>5} {share:4.2f} {bar}  "
        f"{'drift' if label.get('drifted') else 'ok' if label else '':6}  "
        f"{'' if prediction is None else f'{prediction:.3f}':>6}  {quality_text:>15}  "
        f"{audit.verdict:13}  {_retraining(audit, records, pipeline)}"
    )


def _retraining(audit: StageRecord, records: RecordStore, pipeline: str) -> str:
    """What the training run an audit started decided, from its judgement record."""
    if audit.verdict != "retrain":
        return ""
    run_id = f"drift_audit__{audit.run_id}"
    judged = list(records.records(pipeline, RecordStage.JUDGEMENT, run_id))
    if not judged:
        return f"{run_id}: not judged yet"
    judgement = judged[-1]
    why = f" ({judgement.reasons[0][:60]})" if judgement.reasons else ""
    return f"{run_id}: {judgement.subject} {judgement.verdict}{why}"


def _feature_trend(audits: list[StageRecord], feature: str) -> int:
    print(f"{'ended (UTC)':16}  {'method':30}  {'score':>8}  {'limit':>6}  drifted")
    for audit in audits:
        verdict = audit.payload.get("verdict", {})
        columns = [*verdict.get("features", []), verdict.get("label") or {}]
        found = next((c for c in columns if c.get("column") == feature), None)
        if found is None:
            continue
        print(
            f"{audit.ended_at:%Y-%m-%d %H:%M}  {found['method']:30}  {found['score']:8.4f}  "
            f"{found['threshold']:6.3f}  {'yes' if found['drifted'] else 'no'}"
        )
    return 0
