"""``loopline models list|show|promote|rollback|shadow``: the registry from a terminal."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from loopline.promotion.manual import cli_actor, promote_manually
from loopline.registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError
from loopline.registry.importance import NOT_COMPUTED

if TYPE_CHECKING:
    from loopline.registry import ModelVersion
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore


def run_models_command(args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore) -> int:
    """Run one `models` action on `spec`'s registry in `store` (both chosen by the caller)."""
    registry = ModelRegistry(store, spec.data.bucket)
    try:
        if args.action == "list":
            _list(registry, spec.name)
        elif args.action == "show":
            _show(registry, spec.name, args.version or CHAMPION)
            if spec.promotion.shadow is not None:
                version = registry.resolve(spec.name, args.version or CHAMPION)
                print("\n".join(shadow_lines(registry, spec, version)))
        elif args.action == "promote":
            _promote(registry, spec, args.version, args.reason, args.force)
        elif args.action == "shadow":
            return _shadow(registry, spec, args.version or CHALLENGER, args.days)
        else:
            move = registry.rollback(
                spec.name, reason=args.reason or "manual rollback", by=cli_actor()
            )
            print(f"{spec.name}@champion: {move.previous} -> {move.version} (rollback)")
    except RegistryError as error:
        print(f"error: {error}")
        return 1
    return 0


def _list(registry: ModelRegistry, name: str) -> None:
    champion, challenger = registry.alias(name, CHAMPION), registry.alias(name, CHALLENGER)
    versions = registry.versions(name)
    if not versions:
        print(f"{name}: no versions registered yet")
        return
    print(f"{'version':>7}  {'created (UTC)':19}  {'alias':10}  metrics  (device, run)")
    for record in versions:
        alias = {champion: CHAMPION, challenger: CHALLENGER}.get(record.version, "")
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(record.metrics.items()))
        device = record.training.get("device", "?")
        run = record.lineage.get("run_id", "-")
        print(
            f"{record.version:>7}  {record.created_at:%Y-%m-%d %H:%M:%S}  {alias:10}  "
            f"{metrics}  ({device}, {run})"
        )


def _show(registry: ModelRegistry, name: str, which: str) -> None:
    version = registry.resolve(name, which)
    record = registry.get(name, version)
    print(record.model_dump_json(indent=2, exclude={"importance"}))
    print("\n".join(importance_lines(record)))
    for alias in (CHAMPION, CHALLENGER):
        for move in registry.history(name, alias):
            print(
                f"{alias}#{move.sequence}: {move.previous} -> {move.version} "
                f"{move.action} at {move.at:%Y-%m-%d %H:%M:%S} by {move.by}: {move.reason}"
            )


def _shadow(registry: ModelRegistry, spec: PipelineSpec, which: str, days: int) -> int:
    """Judge `which` (default: the challenger) on its shadow scores of the last `days` days
    against the champion's, record the verdict and print it; 1 unless it passed."""
    from datetime import UTC, datetime

    from loopline.commands.consumers import cli_run
    from loopline.promotion.shadow import judge_shadow, last_days, record_shadow_verdict

    if spec.promotion.shadow is None:
        raise RegistryError(f"{spec.name} has no promotion.shadow section: nothing to judge by")
    version, champion = registry.resolve(spec.name, which), registry.alias(spec.name, CHAMPION)
    if champion is None or champion == version:
        raise RegistryError(f"v{version} has no champion to be compared with")
    window = last_days(datetime.now(UTC).date(), days)
    verdict = judge_shadow(registry.store, spec, version, champion, window)
    record = record_shadow_verdict(
        registry.store, spec.data.bucket, verdict, cli_run(spec, "shadow")
    )
    print(f"{spec.name} v{version} in shadow against champion v{champion}: {verdict.verdict}")
    for reason in verdict.reasons:
        print(f"  {reason}")
    print(f"recorded as run {record.run_id}")
    return 0 if verdict.verdict == "pass" else 1


def shadow_lines(registry: ModelRegistry, spec: PipelineSpec, version: int) -> list[str]:
    from loopline.promotion.shadow import latest_shadow_verdict

    verdict = latest_shadow_verdict(registry.store, spec, version)
    if verdict is None:
        return [f"shadow verdict (v{version}): none"]
    numbers = ", ".join(f"{k} {v:.4g}" for k, v in verdict.numbers.items())
    return [
        f"shadow verdict (v{version}): {verdict.verdict} against "
        f"v{verdict.payload.get('champion')} at {verdict.ended_at:%Y-%m-%d %H:%M}: {numbers}",
        *(f"  {reason}" for reason in verdict.reasons),
    ]


def importance_lines(record: ModelVersion) -> list[str]:
    """The version's global feature importance, most important first, with each feature's
    share of the total and how it was computed."""
    importance = record.importance
    if importance is None:
        return [f"feature importance: {NOT_COMPUTED}"]
    shares = importance.shares()
    width = max(len(name) for name in importance.values)
    lines = [f"feature importance (v{record.version}): {importance.describe()}"]
    lines += [
        f"  {rank:>3}. {name:{width}}  {value:.5f}  {shares[name]:6.1%}"
        for rank, (name, value) in enumerate(importance.ranked(), start=1)
    ]
    return lines


def _promote(
    registry: ModelRegistry, spec: PipelineSpec, which: str | None, reason: str, force: bool
) -> None:
    """The train DAG's rules (loopline.promotion.manual): refused with the failed checks,
    unless forced with a reason, which the promotion record keeps."""
    if which is None:
        raise RegistryError("promote needs a version")
    version = registry.resolve(spec.name, which)
    move, record = promote_manually(
        registry, spec, version, actor=cli_actor(), reason=reason, force=force
    )
    how = "FORCED promotion" if record.payload["forced"] else "manual promotion"
    print(f"{spec.name}@champion: {move.previous} -> {move.version} ({how} by {move.by})")


__all__ = ["run_models_command"]
