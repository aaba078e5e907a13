"""What an audit compares the current window with: its reference, built once and stored.

"champion" (the default): the rows the champion was trained on (its training run's train
table), profiled once per champion version, with the champion's scores on its own holdout (the
prediction reference) and its holdout metric (the quality reference). A new champion gets a
new reference the first time it is audited; every later audit of it reads the stored one.
When the training run's tables are gone, the profiles of the validated objects its snapshot
read stand in (the window's whole objects: close, and said so in the description).

"window": the `reference_window_days` of validated data before the current window, merged
from the stored batch profiles (no prediction or quality reference: there is no one model).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopline.data.profile_store import PROFILES_PREFIX, ProfileStore, sample_key
from loopline.data.profiles import BatchProfile, NumericProfile, profile_table
from loopline.data.validated import coverage, validated_keys
from loopline.data.window import RunWindow
from loopline.registry import CHAMPION, ModelRegistry, ModelVersion
from loopline.registry.layout import snapshot_table_key
from loopline.spec.sections import FileFormat, PipelineSpec
from loopline.storage.formats import CONTENT_TYPES, decode
from loopline.storage.objects import ObjectStore

if TYPE_CHECKING:
    from loopline.drift.audit import Scorer

log = logging.getLogger(__name__)

SCORE = "score"
SAMPLE = "sample.parquet"  # the reference's sample, beside its profile


class NoReference(Exception):
    """Nothing to compare with: no champion yet, or no data before the window."""


@dataclass(frozen=True)
class Reference:
    description: str  # what the rows are, for reports and records
    profile: BatchProfile
    version: int | None = None  # the champion's, with the "champion" reference
    predictions: NumericProfile | None = None  # the champion's scores on its holdout
    holdout_metric: float | None = None  # the champion's promotion metric on its holdout
    # Where its sample is stored (one object, or the batches' samples to merge): the report,
    # rendered after the decision, reads the very rows the audit's sample held.
    sample_keys: tuple[str, ...] = ()


def champion_reference(
    store: ObjectStore, registry: ModelRegistry, spec: PipelineSpec, scorer: Scorer
) -> Reference:
    """The champion's reference, from its store or built (once per version) and stored.
    `scorer(version, table)`: the champion's scores on `table`."""
    version = registry.alias(spec.name, CHAMPION)
    if version is None:
        raise NoReference(f"{spec.name} has no champion yet: there is nothing to compare with")
    model = registry.get(spec.name, version)
    metric = model.metrics.get(spec.promotion.metric.value)
    stored = _read(store, spec, version)
    if stored is not None:
        profile, predictions, description = stored
    else:
        profile, predictions, description = _build(store, spec, model, scorer)
        _write(store, spec, version, profile, predictions, description)
    samples = (_prefix(spec, version) + SAMPLE,) if profile.sample is not None else ()
    return Reference(description, profile, version, predictions, metric, samples)


def window_reference(store: ObjectStore, spec: PipelineSpec, current: RunWindow) -> Reference:
    """The validated data of the `reference_window_days` before the `current` window."""
    days = spec.drift.reference_window_days
    first = current.before(days).first_day
    # The day before the current window's first dt= folder, not before.last_day: a window
    # starting mid-day shares its first day with the one before it, and that day's batches
    # are the current window's.
    last = current.first_day - timedelta(days=1)
    keys = list(validated_keys(store, spec.data, first, last))
    if not keys:
        raise NoReference(
            f"no validated batch dated {first:%Y-%m-%d} .. {last:%Y-%m-%d} for the reference "
            f"window (drift.reference_window_days {days}); "
            f"{coverage(store, spec.data).describe()}"
        )
    profile = ProfileStore(store, spec.data).merged(keys)
    return Reference(
        f"{len(keys)} validated batch(es) dated {first:%Y-%m-%d} .. {last:%Y-%m-%d} "
        f"({profile.rows:,} rows)",
        profile,
        sample_keys=tuple(sample_key(key) for key in keys),
    )


def _build(
    store: ObjectStore, spec: PipelineSpec, model: ModelVersion, scorer: Scorer
) -> tuple[BatchProfile, NumericProfile | None, str]:
    profiles = ProfileStore(store, spec.data)
    run_id = model.lineage.get("run_id", "")
    bucket = spec.data.bucket
    if run_id and store.head(bucket, snapshot_table_key(spec.name, run_id, "train")) is not None:
        train = _table(store, bucket, snapshot_table_key(spec.name, run_id, "train"))
        holdout = _table(store, bucket, snapshot_table_key(spec.name, run_id, "holdout"))
        profile = profiles.profile(train, f"reference/v{model.version}")
        description = (
            f"champion v{model.version}'s training rows ({train.num_rows:,}, run {run_id})"
        )
    else:  # the run's tables were removed: the objects its snapshot read stand in
        keys = [obj["key"] for obj in model.snapshot.get("objects", [])]
        if not keys:
            raise NoReference(f"champion v{model.version} records no training data")
        profile = profiles.merged(keys)
        holdout = None
        description = (
            f"the {len(keys)} validated object(s) champion v{model.version} was trained from "
            f"({profile.rows:,} rows; its training run's tables are gone)"
        )
    log.info("built the drift reference: %s", description)
    scores = _scores_profile(scorer(model.version, holdout)) if holdout is not None else None
    return profile, scores, description


def _scores_profile(scores: Any) -> NumericProfile:
    table = pa.table({SCORE: pa.array(scores, pa.float64())})
    column = profile_table(table, [SCORE], []).columns[SCORE]
    assert isinstance(column, NumericProfile)
    return column


def _table(store: ObjectStore, bucket: str, key: str) -> pa.Table:
    return decode(store.get(bucket, key), FileFormat.PARQUET)


def _prefix(spec: PipelineSpec, version: int) -> str:
    return f"{PROFILES_PREFIX}{spec.name}/reference/v{version:06d}/"


def _write(
    store: ObjectStore,
    spec: PipelineSpec,
    version: int,
    profile: BatchProfile,
    predictions: NumericProfile | None,
    description: str,
) -> None:
    bucket, prefix, parquet = (
        spec.data.bucket,
        _prefix(spec, version),
        CONTENT_TYPES[FileFormat.PARQUET],
    )
    if predictions is not None:
        scores = BatchProfile(0, {SCORE: predictions})
        store.put(bucket, prefix + "predictions.profile.parquet", scores.to_parquet(), parquet)
    if (sample := profile.sample_parquet()) is not None:
        store.put(bucket, prefix + SAMPLE, sample, parquet)
    store.put(bucket, prefix + "description.txt", description.encode(), "text/plain")
    # Last: the statistics file is what says the reference is complete.
    store.put(bucket, prefix + "profile.parquet", profile.to_parquet(), parquet)


def _read(
    store: ObjectStore, spec: PipelineSpec, version: int
) -> tuple[BatchProfile, NumericProfile | None, str] | None:
    bucket, prefix = spec.data.bucket, _prefix(spec, version)
    statistics = store.get_if_exists(bucket, prefix + "profile.parquet")
    if statistics is None:  # written last: without it the reference is not complete
        return None
    sample = store.get_if_exists(bucket, prefix + SAMPLE)
    profile = BatchProfile.from_parquet(statistics, sample)
    predictions = None
    if (scored := store.get_if_exists(bucket, prefix + "predictions.profile.parquet")) is not None:
        column = BatchProfile.from_parquet(scored).columns[SCORE]
        assert isinstance(column, NumericProfile)
        predictions = column
    return profile, predictions, store.get(bucket, prefix + "description.txt").decode()
