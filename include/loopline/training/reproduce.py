"""Reproduce a registered version: retrain it from what it recorded, register, compare.

A version's metadata (create-only, so it cannot drift from what was trained) records its
snapshot (every validated object read, with its sha256 and rows in the window; the window;
the holdout fraction; the train and holdout row counts), its hyper-parameters, and, in its
``training`` section, the seed, the epoch limit, the early-stopping patience, the architecture
and the device. Reproducing re-reads exactly those objects, refusing one that is missing or
whose sha256 changed, rebuilds the same split (the holdout is chosen by a hash of the key, so
the same rows give the same split), trains with the recorded settings and registers the result
as a new version whose lineage says ``reproduces: <version>``. No alias moves: a reproduction
is evidence, not a candidate for promotion.

Tolerance: every holdout metric the original recorded is compared, and the reproduction
matches when ``|reproduced - original| <= tolerance`` for each (default 1e-6, absolute). On
the CPU, with the recorded seed, op determinism (``trainer.train_model``), the same machine
and the same pinned packages, the weights are bit-identical and the measured differences are
0.0 (AUC, log loss, accuracy). Another CPU type or other package versions change the
floating-point order (expect |dAUC| up to ~1e-3); a GPU is not deterministic here (mixed
precision, XLA). Where the code version, the device or the spec differs from what was
recorded, the result carries a warning saying so: a difference may come from there.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from loopline.data.reading import UnreadableFile, conform, read_batch
from loopline.data.validated import ObjectRead, in_window
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.records.lineage import code_version
from loopline.records.store import RecordError
from loopline.registry import ModelRegistry, ModelVersion
from loopline.spec.sections import (
    Architecture,
    DataSpec,
    HyperParameters,
    Metric,
    PipelineSpec,
)
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.training.register import register_candidate, training_record
from loopline.training.snapshot import Snapshot, SnapshotRecord, holdout_mask, save_snapshot
from loopline.training.trainer import train_model

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-6  # absolute, per holdout metric: same machine, pinned versions, seed


class ReproductionRefused(Exception):
    """The version cannot be retrained as it was: its data or its record says why."""


class SnapshotObjectMissing(ReproductionRefused):
    """An object the version trained on is gone."""


class SnapshotObjectChanged(ReproductionRefused):
    """An object the version trained on holds other bytes now."""


@dataclass(frozen=True)
class Recipe:
    """Everything a version recorded about how it was trained, as the trainer takes it."""

    version: int
    snapshot: SnapshotRecord
    objects: tuple[ObjectRead, ...]
    spec: PipelineSpec  # the current spec with the recorded model and training settings
    max_epochs: int
    device: str
    code_version: str
    run_id: str  # the training run; its snapshot record names the spec version it used
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricDifference:
    name: str
    original: float
    reproduced: float  # NaN when the reproduction did not measure it

    @property
    def difference(self) -> float:
        return self.reproduced - self.original

    def within(self, tolerance: float) -> bool:
        return abs(self.difference) <= tolerance  # False for NaN


@dataclass(frozen=True)
class Reproduction:
    """What `reproduce_version` did and found."""

    pipeline: str
    original: int
    reproduced: int
    tolerance: float
    metrics: tuple[MetricDifference, ...]
    objects_verified: int
    device: str
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def within_tolerance(self) -> bool:
        return bool(self.metrics) and all(m.within(self.tolerance) for m in self.metrics)

    @property
    def verdict(self) -> str:
        return "reproduced" if self.within_tolerance else "differs"

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "metrics": [
                {**asdict(m), "difference": m.difference, "within": m.within(self.tolerance)}
                for m in self.metrics
            ],
            "within_tolerance": self.within_tolerance,
            "verdict": self.verdict,
        }


def reproduce_version(
    store: ObjectStore,
    registry: ModelRegistry,
    spec: PipelineSpec,
    version: int,
    *,
    run: RunContext | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Reproduction:
    """Retrain `version` of `spec`'s model from its recorded snapshot and settings, register
    the result (lineage ``reproduces``; no alias moves), record it and compare the metrics.

    Raises ReproductionRefused (naming the object, the recorded and the found sha256) when
    the snapshot's data is missing or changed, or when the spec no longer fits the version.
    """
    original = registry.get(spec.name, version)
    run = run or reproduction_run(spec.name, version)
    recipe = recipe_of(original, spec)
    warnings = [*recipe.warnings, *context_warnings(store, recipe, run)]
    bodies = read_recorded_objects(store, spec.data.bucket, recipe.objects, what=_what(recipe))
    snapshot = rebuild_snapshot(bodies, recipe)
    outcome = train_model(
        snapshot.train, recipe.spec.model, recipe.spec.training, epochs=recipe.max_epochs
    )
    lineage = {
        "dag_id": run.dag_id or "",
        "run_id": run.run_id,
        "task_id": run.task_id or "",
        "try_number": str(run.try_number or ""),
        "reason": f"reproduces version {version}",
        "reproduces": str(version),
    }
    # The run keeps its own snapshot (tables and record), as a train run does: the drift
    # reference of a version reads its run's tables.
    save_snapshot(store, recipe.spec, snapshot, run)
    reproduced = register_candidate(registry, recipe.spec, outcome, snapshot, lineage)
    records = RecordStore(registry.store, registry.bucket)
    records.write(training_record(registry, reproduced, run))
    result = Reproduction(
        pipeline=spec.name,
        original=version,
        reproduced=reproduced.version,
        tolerance=tolerance,
        metrics=compare_metrics(original.metrics, reproduced.metrics),
        objects_verified=len(bodies),
        device=outcome.device,
        seconds=round(outcome.seconds, 2),
        warnings=tuple(warnings),
    )
    records.write(reproduction_record(result, recipe, reproduced, registry, run))
    log.info(
        "%s version %d reproduced as %d: %s (tolerance %g)",
        spec.name,
        version,
        reproduced.version,
        result.verdict,
        tolerance,
    )
    return result


def reproduction_run(pipeline: str, version: int, spec_sha256: str | None = None) -> RunContext:
    """A reproduction's own run: its snapshot, training and reproduction records go there."""
    # The suffix keeps two reproductions started in the same second apart.
    run_id = f"reproduce-{version}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    return RunContext(pipeline, run_id, spec_sha256=spec_sha256)


def recipe_of(version: ModelVersion, spec: PipelineSpec) -> Recipe:
    """The version's recorded settings on top of the current spec; what the version did not
    record (versions registered before it was recorded) comes from the spec, with a warning."""
    if not version.snapshot.get("objects"):
        raise ReproductionRefused(
            f"{spec.name} version {version.version} recorded no snapshot objects: there is "
            "nothing to retrain it from"
        )
    _require_same_inputs(version, spec)
    settings = _RecordedSettings(version)
    device = str(version.training.get("device", "CPU"))
    model = spec.model.model_copy(
        update={
            "hyperparameters": HyperParameters(**version.hyperparameters),
            "architecture": Architecture(
                **settings.get("architecture", spec.model.architecture.model_dump(), "the spec's")
            ),
        }
    )
    training = spec.training.model_copy(
        update={
            "seed": settings.get("seed", spec.training.seed, "the spec's"),
            "early_stopping_patience": settings.get(
                "early_stopping_patience", spec.training.early_stopping_patience, "the spec's"
            ),
            "metrics": [Metric(name) for name in version.metrics],
            "holdout_fraction": version.snapshot["holdout_fraction"],
            # The recorded device's kind: a CPU version is reproduced on the CPU, the only
            # device whose ops are deterministic here, even where a GPU is visible.
            "use_gpu_if_available": device.startswith("GPU"),
        }
    )
    # Keras stops where the original stopped given its limit; the epochs it ran do as well.
    epochs_run = version.training.get("epochs_run", 0)
    max_epochs = int(settings.get("max_epochs", epochs_run, "the epochs it ran"))
    snapshot = SnapshotRecord(**version.snapshot)
    return Recipe(
        version=version.version,
        snapshot=snapshot,
        objects=tuple(ObjectRead(o["key"], o["sha256"], int(o["rows"])) for o in snapshot.objects),
        spec=spec.model_copy(update={"model": model, "training": training}),
        max_epochs=max_epochs,
        device=device,
        code_version=version.code_version,
        run_id=version.lineage.get("run_id", ""),
        warnings=(*settings.warnings, *_difference_warnings(version, device)),
    )


class _RecordedSettings:
    """A version's recorded training settings; a fallback for one it lacks is a warning."""

    def __init__(self, version: ModelVersion) -> None:
        self.version = version
        self.warnings: list[str] = []

    def get(self, name: str, fallback: Any, source: str) -> Any:
        if name in self.version.training:
            return self.version.training[name]
        self.warnings.append(
            f"version {self.version.version} did not record its {name}: using {fallback!r} "
            f"({source})"
        )
        return fallback


def _difference_warnings(version: ModelVersion, device: str) -> list[str]:
    """What may make the reproduction differ, though it runs: the device and the code."""
    warnings = []
    if device.startswith("GPU"):
        warnings.append(
            f"version {version.version} was trained on {device}: GPU training is not "
            "deterministic here, expect differences beyond the CPU tolerance"
        )
    if version.code_version != (current := code_version()):
        warnings.append(
            f"the code differs: version {version.version} was trained by code version "
            f"{version.code_version}, this is {current}"
        )
    return warnings


def _require_same_inputs(version: ModelVersion, spec: PipelineSpec) -> None:
    """The features the version takes must still be the spec's: the model is built from them."""
    recorded = [column["name"] for column in version.input_schema]
    if recorded != spec.model.features.all:
        raise ReproductionRefused(
            f"{spec.name} version {version.version} takes the features {recorded}, the spec "
            f"now names {spec.model.features.all}: reproduce it with the spec of its time"
        )


def context_warnings(store: ObjectStore, recipe: Recipe, run: RunContext) -> list[str]:
    """Where the spec the training run used (its snapshot record says) differs from this one."""
    if not recipe.run_id:
        return [f"version {recipe.version} names no training run: its spec version is unknown"]
    try:
        record = RecordStore(store, recipe.spec.data.bucket).read(
            recipe.spec.name, RecordStage.SNAPSHOT, recipe.run_id
        )
    except RecordError:
        return [f"no snapshot record for run {recipe.run_id}: its spec version is unknown"]
    if record.spec_sha256 and run.spec_sha256 and record.spec_sha256 != run.spec_sha256:
        return [
            f"the spec file changed since run {recipe.run_id} (sha256 {record.spec_sha256[:12]}"
            f", now {run.spec_sha256[:12]}): its columns, key and label are read as they are now"
        ]
    return []


def read_recorded_objects(
    store: ObjectStore, bucket: str, objects: tuple[ObjectRead, ...], *, what: str
) -> list[bytes]:
    """The bytes of every recorded object, each checked against its recorded sha256."""
    bodies = []
    for recorded in objects:
        uri = f"s3://{bucket}/{recorded.key}"
        body = store.get_if_exists(bucket, recorded.key)
        if body is None:
            raise SnapshotObjectMissing(
                f"cannot reproduce {what}: its snapshot object {uri} is missing (recorded "
                f"sha256 {recorded.sha256}, found no object); restore it (from the archive or "
                "the bucket's versions) to reproduce"
            )
        if (found := sha256_hex(body)) != recorded.sha256:
            raise SnapshotObjectChanged(
                f"cannot reproduce {what}: its snapshot object {uri} changed since it was "
                f"trained (recorded sha256 {recorded.sha256}, found {found}); restore the "
                "recorded bytes to reproduce"
            )
        bodies.append(body)
    return bodies


def rebuild_snapshot(bodies: list[bytes], recipe: Recipe) -> Snapshot:
    """The recorded rows and split again: each object's rows in the window, in the recorded
    order, split by the key hash at the recorded holdout fraction; every count checked."""
    data, record = recipe.spec.data, recipe.snapshot
    start = datetime.fromisoformat(record.window_start)
    end = datetime.fromisoformat(record.window_end)
    tables = []
    for recorded, body in zip(recipe.objects, bodies, strict=True):
        table = in_window(_read(body, recorded.key, data), data.timestamp, start, end)
        _require_count(f"rows of {recorded.key} in the window", recorded.rows, table.num_rows)
        tables.append(conform(table, data.columns))
    rows = pa.concat_tables(tables)
    in_holdout = holdout_mask(rows.column(data.key), record.holdout_fraction)
    train, holdout = rows.filter(pa.array(~in_holdout)), rows.filter(pa.array(in_holdout))
    _require_count("training rows", record.train_rows, train.num_rows)
    _require_count("holdout rows", record.holdout_rows, holdout.num_rows)
    return Snapshot(train, holdout, record)


def _read(body: bytes, key: str, data: DataSpec) -> pa.Table:
    try:
        return read_batch(body, key, data.columns, data.format)
    except UnreadableFile as exc:  # its sha256 matched: the spec's columns changed
        raise ReproductionRefused(
            f"s3://{data.bucket}/{key} holds the recorded bytes but the spec's columns cannot "
            f"read it: {exc}"
        ) from exc


def _require_count(what: str, recorded: int, found: int) -> None:
    if recorded != found:
        raise ReproductionRefused(
            f"the rebuilt snapshot differs: {what}: recorded {recorded}, found {found} (the "
            "spec's timestamp or key column changed since?)"
        )


def compare_metrics(
    original: dict[str, float], reproduced: dict[str, float]
) -> tuple[MetricDifference, ...]:
    """Each metric the original recorded, beside the reproduction's (NaN when it has none)."""
    return tuple(
        MetricDifference(name, value, reproduced.get(name, math.nan))
        for name, value in sorted(original.items())
    )


def reproduction_record(
    result: Reproduction,
    recipe: Recipe,
    reproduced: ModelVersion,
    registry: ModelRegistry,
    run: RunContext,
) -> StageRecord:
    bucket = recipe.spec.data.bucket
    base = f"s3://{registry.bucket}/{registry.version_prefix(reproduced.name, reproduced.version)}"
    numbers: dict[str, float] = {"original": result.original, "reproduced": result.reproduced}
    for metric in result.metrics:
        numbers[f"{metric.name}_original"] = metric.original
        if not math.isnan(metric.reproduced):  # JSON has no NaN; the payload says "missing"
            numbers[f"{metric.name}_reproduced"] = metric.reproduced
            numbers[f"{metric.name}_difference"] = metric.difference
    return run.record(
        RecordStage.REPRODUCTION,
        result.verdict,
        subject=f"version-{result.original}",
        inputs=[
            ObjectRef(uri=f"s3://{bucket}/{o.key}", sha256=o.sha256, rows=o.rows)
            for o in recipe.objects
        ],
        outputs=[ObjectRef(uri=base + "metadata.json")],
        reasons=list(result.warnings),
        numbers=numbers,
        resources={"device": result.device},
        payload=result.to_dict(),
    )


def _what(recipe: Recipe) -> str:
    return f"{recipe.spec.name} version {recipe.version}"
