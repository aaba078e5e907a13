"""Every kind of task a plan may hold, each with its typed arguments.

The arguments' class names the task kind; ``loopline.airflow.factory`` maps each kind to the
operator that carries it out, and passes the arguments as its keyword arguments (a test checks
that every operator accepts every field). Values read from another task are declared as
``XCom`` (one value) or ``MapOver`` (one task per item of a list) fields, so the plan can check
them against its task ids and upstreams when it is built; the factory hands the operator that
task's output (an ``XComArg``), so no operator pulls by task id. A ``SpecFile`` field becomes
the operator's ``spec_path`` and ``spec_sha256``: the spec version the plan was made from.
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
    START_SHADOW = "start_shadow"
    JUDGE_SHADOW = "judge_shadow"
    APPROVE_SHADOW_PROMOTION = "approve_shadow_promotion"
    PROMOTE_CHALLENGER = "promote_challenger"
    STOP_SHADOW = "stop_shadow"
    BATCH_SCORE = "batch_score"
    DRIFT_AUDIT = "drift_audit"
    RETRAIN_ON_DRIFT = "retrain_on_drift"
    DRIFT_REPORT = "drift_report"
    CHOOSE_CONSUMER_ACTION = "choose_consumer_action"
    DEPLOY_CONSUMERS = "deploy_consumers"
    SCALE_CONSUMERS = "scale_consumers"
    STOP_CONSUMERS = "stop_consumers"
    MONITOR_CONSUMERS = "monitor_consumers"
    CHOOSE_REPLAY = "choose_replay"
    REPLAY_QUARANTINED = "replay_quarantined"
    REPLAY_DEAD_LETTERS = "replay_dead_letters"


@dataclass(frozen=True)
class XCom:
    """The value another task returned, named by its task id."""

    task_id: str


@dataclass(frozen=True)
class MapOver(XCom):
    """Run this task once per item of the list another task returned."""


@dataclass(frozen=True)
class SpecFile:
    """A pipeline's spec file and the sha256 of the version planned."""

    path: str
    sha256: str


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
        """The operator's keyword arguments: a spec file becomes its path and version; an
        XCom stays one (the factory hands over that task's output); mapped ones go."""
        kwargs: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, MapOver):
                continue
            if isinstance(value, SpecFile):
                kwargs.update(spec_path=value.path, spec_sha256=value.sha256)
            else:
                kwargs[f.name] = value
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
    spec: SpecFile
    suite_path: str
    keys: MapOver


@dataclass(frozen=True)
class PublishValidated(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.PUBLISH_VALIDATED
    results: XCom


@dataclass(frozen=True)
class ValidationVerdict(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.VALIDATION_VERDICT
    spec: SpecFile
    results: XCom
    keys: XCom
    fail_on_invalid: bool


# -- retraining and promotion ------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSnapshot(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.TRAINING_SNAPSHOT
    spec: SpecFile
    window_days: Template
    window_end: Template  # empty: the run's own


@dataclass(frozen=True)
class TrainModel(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.TRAIN_MODEL
    spec: SpecFile
    epochs: Template
    reason: Template


@dataclass(frozen=True)
class JudgeCandidate(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.JUDGE_CANDIDATE
    spec: SpecFile
    version: XCom


@dataclass(frozen=True)
class ApprovePromotion(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.APPROVE_PROMOTION
    pipeline: str
    judgement: XCom
    approvers: tuple[str, ...] = ()  # Airflow user ids; empty: anyone who may answer HITL


@dataclass(frozen=True)
class Promote(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.PROMOTE
    spec: SpecFile
    judgement: XCom


@dataclass(frozen=True)
class Rollback(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.ROLLBACK
    spec: SpecFile
    reason: Template


# -- a challenger judged on live traffic (shadow) -----------------------------------------
@dataclass(frozen=True)
class StartShadow(TaskArgs):
    """Finds the challenger awaiting its shadow verdict and has the replicas shadow it."""

    kind: ClassVar[TaskKind] = TaskKind.START_SHADOW
    spec: SpecFile


@dataclass(frozen=True)
class JudgeShadow(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.JUDGE_SHADOW
    spec: SpecFile
    challenger: XCom  # start_shadow's: the challenger and the champion it is judged against
    days: Template


@dataclass(frozen=True)
class ApproveShadowPromotion(TaskArgs):
    """The train DAG's approval (``ApprovePromotion``), asked for a shadow verdict's winner."""

    kind: ClassVar[TaskKind] = TaskKind.APPROVE_SHADOW_PROMOTION
    pipeline: str
    verdict: XCom
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromoteChallenger(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.PROMOTE_CHALLENGER
    spec: SpecFile
    verdict: XCom


@dataclass(frozen=True)
class StopShadow(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.STOP_SHADOW
    spec: SpecFile
    verdict: XCom


# -- batch scoring -----------------------------------------------------------------------
@dataclass(frozen=True)
class BatchScore(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.BATCH_SCORE
    spec: SpecFile
    window_days: Template
    model_version: Template
    window_end: Template  # empty: when the run was due


# -- drift audits ------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftAudit(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.DRIFT_AUDIT
    spec: SpecFile
    window_end: Template  # empty: when the run was due


@dataclass(frozen=True)
class RetrainOnDrift(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.RETRAIN_ON_DRIFT
    train_dag_id: str
    decision: XCom


@dataclass(frozen=True)
class DriftReport(TaskArgs):
    """Renders the report of the audit its run recorded (the record names the samples)."""

    kind: ClassVar[TaskKind] = TaskKind.DRIFT_REPORT
    spec: SpecFile


# -- streaming consumers -------------------------------------------------------------------
@dataclass(frozen=True)
class ChooseConsumerAction(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.CHOOSE_CONSUMER_ACTION
    action: Template  # deploy, scale or stop
    branches: Mapping[str, str]  # each action's task id, downstream of this task


@dataclass(frozen=True)
class DeployConsumers(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.DEPLOY_CONSUMERS
    spec: SpecFile
    model_version: Template  # champion or a number
    replicas: Template  # empty: as many as run now, at least replicas.min


@dataclass(frozen=True)
class ScaleConsumers(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.SCALE_CONSUMERS
    spec: SpecFile
    replicas: Template  # empty: as many as run now, within replicas.min..max
    model_version: Template  # what new replicas start on


@dataclass(frozen=True)
class StopConsumers(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.STOP_CONSUMERS
    spec: SpecFile


@dataclass(frozen=True)
class MonitorConsumers(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.MONITOR_CONSUMERS
    spec: SpecFile


# -- replay ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChooseReplay(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.CHOOSE_REPLAY
    what: Template  # quarantine or dead_letters
    branches: Mapping[str, str]  # each choice's task id, downstream of this task


@dataclass(frozen=True)
class ReplayQuarantined(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.REPLAY_QUARANTINED
    spec: SpecFile
    objects: Template  # quarantined keys or prefixes


@dataclass(frozen=True)
class ReplayDeadLetters(TaskArgs):
    kind: ClassVar[TaskKind] = TaskKind.REPLAY_DEAD_LETTERS
    spec: SpecFile
    max_events: Template
    force: Template  # replay events already scored too


ARGUMENTS: dict[TaskKind, type[TaskArgs]] = {
    args.kind: args for args in TaskArgs.__subclasses__() if hasattr(args, "kind")
}
