"""Retrain, register, judge, promote: the steps the retraining DAG runs, one function each.

Each step takes what the previous one left on S3 (a registered version, a snapshot record),
so the DAG can run them as separate tasks, retry any of them, and put a human approval
between judging and promoting.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from loopline.promotion.gates import Candidate, Decision, decide
from loopline.registry import CHALLENGER, CHAMPION, AliasMove, ModelRegistry, ModelVersion
from loopline.spec.model import PipelineSpec
from loopline.training.evaluate import evaluate, size_mb
from loopline.training.snapshot import Snapshot, load_saved_snapshot
from loopline.training.trainer import (
    MODEL_FILE,
    TrainingOutcome,
    load_model,
    save_artifacts,
    train_model,
)

log = logging.getLogger(__name__)

DECISION_FILE = "decision.json"


@dataclass(frozen=True)
class Judgement:
    version: int
    champion: int | None  # the champion it was judged against
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "champion": self.champion,
            "promote": self.decision.promote,
            "reasons": self.decision.reasons,
            "checks": [asdict(check) for check in self.decision.checks],
        }


def code_version() -> str:
    """LOOPLINE_CODE_VERSION (set it in the image), else the git commit, else 'unknown'."""
    if version := os.environ.get("LOOPLINE_CODE_VERSION"):
        return version
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def register_candidate(
    registry: ModelRegistry,
    spec: PipelineSpec,
    outcome: TrainingOutcome,
    snapshot: Snapshot,
    lineage: dict[str, str],
) -> ModelVersion:
    """Save the trained model and register it with its holdout metrics and lineage."""
    evaluation = evaluate(outcome.model, snapshot.holdout, spec.model, spec.training.metrics)
    with tempfile.TemporaryDirectory(prefix="loopline-model-") as folder:
        save_artifacts(outcome.model, folder)
        return registry.register(
            spec.name,
            Path(folder),
            metrics=evaluation.metrics,
            input_schema=input_schema(spec),
            hyperparameters=spec.model.hyperparameters.model_dump(),
            snapshot=snapshot.record.to_dict(),
            code_version=code_version(),
            lineage=lineage,
            parent_champion=registry.alias(spec.name, CHAMPION),
            training={
                "device": outcome.device,
                "epochs_run": outcome.epochs_run,
                "samples_per_second": round(outcome.samples_per_second, 1),
                "seconds": round(outcome.seconds, 2),
                "p99_latency_ms": round(evaluation.p99_latency_ms, 3),
            },
        )


def train_and_register(
    registry: ModelRegistry,
    spec: PipelineSpec,
    snapshot_prefix: str,
    lineage: dict[str, str],
    *,
    epochs: int | None = None,
    progress: Any = None,
) -> tuple[ModelVersion, TrainingOutcome]:
    """What the train task does: read the run's snapshot from S3, train, register."""
    snapshot = load_saved_snapshot(registry.store, spec, snapshot_prefix)
    outcome = train_model(
        snapshot.train, spec.model, spec.training, epochs=epochs, progress=progress
    )
    return register_candidate(registry, spec, outcome, snapshot, lineage), outcome


def judge(
    registry: ModelRegistry, spec: PipelineSpec, version: int, holdout: pa.Table
) -> Judgement:
    """Evaluate the candidate and the current champion on the same holdout, from the files in
    the registry (checksums verified: a corrupt file fails here, before any promotion)."""
    champion = registry.alias(spec.name, CHAMPION)
    candidate = _measure(registry, spec, version, holdout)
    incumbent = None
    if champion is not None and champion != version:
        incumbent = _measure(registry, spec, champion, holdout)
    decision = decide(candidate, incumbent, spec.promotion)
    log.info("%s v%d against champion %s:\n%s", spec.name, version, champion, decision.summary())
    judgement = Judgement(version, champion, decision)
    _record(registry, spec.name, version, judgement)
    return judgement


def apply(
    registry: ModelRegistry, spec: PipelineSpec, judgement: Judgement, *, by: str
) -> AliasMove:
    """Promote a passing candidate (only if the champion is still the one it beat), or point
    the challenger alias at a refused one, with its reasons."""
    if judgement.decision.promote:
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
        reason="; ".join(judgement.decision.reasons),
        by=by,
    )


def input_schema(spec: PipelineSpec) -> list[dict[str, str]]:
    types = {column.name: column.type.value for column in spec.data.columns}
    return [{"name": name, "type": types[name]} for name in spec.model.features.all]


def _measure(
    registry: ModelRegistry, spec: PipelineSpec, version: int, holdout: pa.Table
) -> Candidate:
    record = registry.get(spec.name, version)
    with tempfile.TemporaryDirectory(prefix="loopline-judge-") as folder:
        registry.download(spec.name, version, Path(folder))
        model = load_model(folder)
        evaluation = evaluate(model, holdout, spec.model, spec.training.metrics)
        size = size_mb(Path(folder) / MODEL_FILE)
    return Candidate(evaluation.metrics, evaluation.p99_latency_ms, size, record.input_schema)


def _record(registry: ModelRegistry, name: str, version: int, judgement: Judgement) -> None:
    """Keep the newest decision beside the version (it is judged again if re-run)."""
    key = registry.version_prefix(name, version) + DECISION_FILE
    body = json.dumps(judgement.to_dict(), indent=2).encode()
    registry.store.put(registry.bucket, key, body, "application/json")
