"""Which versions may serve: the champion, or a version whose newest judgement passed.

A judgement is the record the train DAG's judge task writes for its candidate
(``records/<pipeline>/judgement/<run>/v<N>.json``, verdict ``promote`` or ``refuse``): the
candidate and the champion measured on the same holdout against the spec's promotion gates.
The streaming deployment and the manual promotion read it here, so neither can put a version
in front of traffic that the gates refused or never saw. A version judged more than once
counts by its newest judgement.

Kept apart from ``registry.py`` (the alias and version store): this only reads records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from loopline.records import RecordStage, RecordStore, StageRecord
from loopline.registry.layout import CHAMPION
from loopline.registry.registry import RegistryError
from loopline.storage.keys import safe_segment

if TYPE_CHECKING:
    from loopline.registry.registry import ModelRegistry

PASSED = "promote"  # the verdict of a judgement whose every gate passed


class NotServable(RegistryError):
    """A version that is neither the champion nor passed its judgement."""


def latest_judgement(registry: ModelRegistry, name: str, version: int) -> StageRecord | None:
    """The newest judgement recorded for `version` of `name`, or None if it was never judged."""
    records = RecordStore(registry.store, registry.bucket)
    prefix = records.stage_prefix(name, RecordStage.JUDGEMENT)
    suffix = f"/{safe_segment(f'v{version}')}.json"
    keys = [k for k in registry.store.list_keys(registry.bucket, prefix) if k.endswith(suffix)]
    found = [_judgement(registry, key) for key in keys]
    mine = [r for r in found if r.pipeline == name and r.payload.get("version") == version]
    return max(mine, key=lambda r: (r.ended_at, r.started_at), default=None)


def passed(judgement: StageRecord | None) -> bool:
    return judgement is not None and judgement.verdict == PASSED


def check_servable(registry: ModelRegistry, name: str, version: int) -> str:
    """Why `version` may serve ("champion", or the run whose judgement passed it); raises
    NotServable (a RegistryError) for any other version, RegistryError for a missing one."""
    registry.get(name, version)  # a version that does not exist: "has no version N"
    champion = registry.alias(name, CHAMPION)
    if version == champion:
        return "champion"
    judgement = latest_judgement(registry, name, version)
    if judgement is None:
        raise NotServable(
            f"{name} v{version} may not serve: it is not the champion (v{champion}) and has "
            "no judgement record (only versions the train DAG judged passing may serve)"
        )
    if not passed(judgement):
        raise NotServable(
            f"{name} v{version} may not serve: its judgement in run {judgement.run_id} "
            f"refused it ({'; '.join(judgement.reasons) or judgement.verdict}); "
            f"the champion is v{champion}"
        )
    return f"passed its judgement in run {judgement.run_id}"


def _judgement(registry: ModelRegistry, key: str) -> StageRecord:
    try:
        return StageRecord.model_validate_json(registry.store.get(registry.bucket, key))
    except ValidationError as exc:  # unreadable is not "passed": refuse, saying where
        raise RegistryError(f"s3://{registry.bucket}/{key} is not a judgement record") from exc
