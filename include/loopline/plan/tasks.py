"""Every kind of task a plan may hold, each with its typed arguments.

The arguments' class names the task kind; ``loopline.airflow.factory`` maps each kind to the
operator that carries it out, and passes the arguments as its keyword arguments (a test checks
that every operator accepts every field). Values read from another task are declared as
``XCom`` (one value) or ``MapOver`` (one task per item of a list) fields, so the plan can check
them against its task ids and upstreams when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar


class TaskKind(StrEnum):
    LAND_DEMO_BATCH = "land_demo_batch"
    WAIT_FOR_OBJECTS = "wait_for_objects"
    GROUP_LANDED = "group_landed"
    VALIDATE_FILES = "validate_files"
    PUBLISH_VALIDATED = "publish_validated"
    VALIDATION_VERDICT = "validation_verdict"
    TRAINING_SNAPSHOT = "training_snapshot"
    TRAIN_MODEL = "train_model"
    JUDGE_CANDIDATE = "judge_candidate"
    APPROVE_PROMOTION = "approve_promotion"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    BATCH_SCORE = "batch_score"
    DRIFT_AUDIT = "drift_audit"
    RETRAIN_ON_DRIFT = "retrain_on_drift"
    DEPLOY_CONSUMERS = "deploy_consumers"
    MONITOR_CONSUMERS = "monitor_consumers"


@dataclass(frozen=True)
class XCom:
    """The value another task returned, named by its task id."""

    task_id: str


@dataclass(frozen=True)
class MapOver(XCom):
    """Run this task once per item of the list another task returned."""


Template = str  # a Jinja template Airflow renders when the task runs, e.g. "{{ params.x }}"


@dataclass(frozen=True)
class TaskArgs:
    """Base of every kind's arguments."""

    kind: ClassVar[TaskKind]

    def xcom_inputs(self) -> dict[str, XCom]:
        """Arguments read from other tasks (mapped ones included), by argument name."""
        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), XCom)}

    def expansions(self) -> dict[str, MapOver]:
        return {name: ref for name, ref in self.xcom_inputs().items() if isinstance(ref, MapOver)}

    def operator_kwargs(self) -> dict[str, Any]:
        """The operator's keyword arguments: an XCom becomes its task id, mapped ones go."""
        kwargs: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, MapOver):
                continue
            kwargs[f.name] = value.task_id if isinstance(value, XCom) else value
        return kwargs


# -- demo feed ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LandDemoBatch(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.LAND_DEMO_BATCH
    pipeline: str
    bucket: str
    landing_prefix: str
    base_seed: int
    fraud_rate: float
    batch: Mapping[str, Template]  # the batch's knobs, from the run's params


# -- validation gate ---------------------------------------------------------------------
@dataclass(frozen=True)
class WaitForObjects(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.WAIT_FOR_OBJECTS
    bucket: str
    prefix: str
    timeout_minutes: int
    poll_seconds: int


@dataclass(frozen=True)
class GroupLanded(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.GROUP_LANDED
    bucket: str
    prefix: str
    max_keys: int
    files_per_task: int
    bytes_per_task: int


@dataclass(frozen=True)
class ValidateFiles(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.VALIDATE_FILES
    spec_path: str
    suite_path: str
    keys: MapOver


@dataclass(frozen=True)
class PublishValidated(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.PUBLISH_VALIDATED
    results_from: XCom


@dataclass(frozen=True)
class ValidationVerdict(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.VALIDATION_VERDICT
    spec_path: str
    results_from: XCom
    keys_from: XCom
    fail_on_invalid: bool


# -- retraining and promotion ------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSnapshot(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.TRAINING_SNAPSHOT
    spec_path: str
    window_days: Template
    window_end: Template  # empty: the run's own


@dataclass(frozen=True)
class TrainModel(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.TRAIN_MODEL
    spec_path: str
    epochs: Template
    reason: Template


@dataclass(frozen=True)
class JudgeCandidate(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.JUDGE_CANDIDATE
    spec_path: str
    version_from: XCom


@dataclass(frozen=True)
class ApprovePromotion(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.APPROVE_PROMOTION
    pipeline: str
    judgement_from: XCom
    approvers: tuple[str, ...] = ()  # Airflow user ids; empty: anyone who may answer HITL


@dataclass(frozen=True)
class Promote(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.PROMOTE
    spec_path: str
    judgement_from: XCom


@dataclass(frozen=True)
class Rollback(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.ROLLBACK
    spec_path: str
    reason: Template


# -- batch scoring -----------------------------------------------------------------------
@dataclass(frozen=True)
class BatchScore(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.BATCH_SCORE
    spec_path: str
    window_days: Template
    model_version: Template


# -- drift audits ------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftAudit(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.DRIFT_AUDIT
    spec_path: str
    window_end: Template  # empty: when the run was due


@dataclass(frozen=True)
class RetrainOnDrift(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.RETRAIN_ON_DRIFT
    train_dag_id: str
    decision_from: XCom


# -- streaming consumers -------------------------------------------------------------------
@dataclass(frozen=True)
class DeployConsumers(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.DEPLOY_CONSUMERS
    spec_path: str
    action: Template  # deploy, scale or stop
    model_version: Template  # champion or a number
    replicas: Template  # empty: as many as run now, at least replicas.min


@dataclass(frozen=True)
class MonitorConsumers(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.MONITOR_CONSUMERS
    spec_path: str


ARGUMENTS: dict[TaskKind, type[TaskArgs]] = {
    args.kind: args for args in TaskArgs.__subclasses__() if hasattr(args, "kind")
}
