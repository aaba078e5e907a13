"""Train on a run's snapshot and register the result: what the train task does."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.records.lineage import code_version
from loopline.registry import CHAMPION, ModelRegistry, ModelVersion
from loopline.serving.artifacts import compiled, save_artifacts
from loopline.serving.evaluate import evaluate
from loopline.serving.explain import global_importance
from loopline.spec.sections import PipelineSpec
from loopline.training.snapshot import Snapshot, load_saved_snapshot
from loopline.training.trainer import TrainingOutcome, train_model

if TYPE_CHECKING:
    import keras


def input_schema(spec: PipelineSpec) -> list[dict[str, str]]:
    """The columns the model takes, with their types: checked again at promotion."""
    types = {column.name: column.type.value for column in spec.data.columns}
    return [{"name": name, "type": types[name]} for name in spec.model.features.all]


def register_candidate(
    registry: ModelRegistry,
    spec: PipelineSpec,
    outcome: TrainingOutcome,
    snapshot: Snapshot,
    lineage: dict[str, str],
) -> ModelVersion:
    """Save the trained model and register it with its holdout metrics, its global feature
    importance on the same holdout, and its lineage."""
    evaluation = evaluate(outcome.model, snapshot.holdout, spec.model, spec.training.metrics)
    # Through the compiled function serving uses, so importance explains what is served.
    importance = global_importance(compiled(outcome.model), spec.model, snapshot.holdout)
    with tempfile.TemporaryDirectory(prefix="loopline-model-") as folder:
        save_artifacts(outcome.model, folder)
        return registry.register(
            spec.name,
            Path(folder),
            metrics=evaluation.metrics,
            importance=importance,
            input_schema=input_schema(spec),
            hyperparameters=spec.model.hyperparameters.model_dump(),
            snapshot=snapshot.record.to_dict(),
            code_version=code_version(),
            lineage=lineage,
            parent_champion=registry.alias(spec.name, CHAMPION),
            training={
                "device": outcome.device,
                "epochs_run": outcome.epochs_run,
                # What `loopline reproduce` retrains with, beside the hyper-parameters.
                "max_epochs": outcome.max_epochs,
                "seed": spec.training.seed,
                "early_stopping_patience": spec.training.early_stopping_patience,
                "architecture": spec.model.architecture.model_dump(mode="json"),
                "samples_per_second": round(outcome.samples_per_second, 1),
                "seconds": round(outcome.seconds, 2),
                "p99_latency_ms": round(evaluation.p99_latency_ms, 3),
            },
        )


def train_and_register(
    registry: ModelRegistry,
    spec: PipelineSpec,
    run: RunContext,
    *,
    epochs: int | None = None,
    reason: str = "",
    progress: keras.callbacks.Callback | None = None,
) -> tuple[ModelVersion, TrainingOutcome]:
    """What the train task does: read the run's snapshot, train, register, record."""
    snapshot = load_saved_snapshot(registry.store, spec, run.run_id)
    outcome = train_model(
        snapshot.train, spec.model, spec.training, epochs=epochs, progress=progress
    )
    lineage = {
        "dag_id": run.dag_id or "",
        "run_id": run.run_id,
        "task_id": run.task_id or "",
        "try_number": str(run.try_number or ""),
        "reason": reason,
    }
    version = register_candidate(registry, spec, outcome, snapshot, lineage)
    RecordStore(registry.store, registry.bucket).write(training_record(registry, version, run))
    return version, outcome


def training_record(registry: ModelRegistry, version: ModelVersion, run: RunContext) -> StageRecord:
    """The registered version as a record: its metadata is the payload, unchanged."""
    base = f"s3://{registry.bucket}/{registry.version_prefix(version.name, version.version)}"
    snapshot_objects = version.snapshot.get("objects", [])
    return run.record(
        RecordStage.TRAINING,
        "registered",
        inputs=[
            ObjectRef(uri=f"s3://{registry.bucket}/{o['key']}", sha256=o["sha256"], rows=o["rows"])
            for o in snapshot_objects
        ],
        outputs=[ObjectRef(uri=base + path, sha256=sha) for path, sha in version.artifacts.items()],
        reasons=[version.lineage.get("reason") or "no reason given"],
        numbers={
            "version": version.version,
            **version.metrics,
            "samples_per_second": version.training.get("samples_per_second", 0.0),
            "epochs_run": version.training.get("epochs_run", 0),
        },
        resources={"device": version.training.get("device", "?")},
        payload=version.model_dump(mode="json"),
    )
