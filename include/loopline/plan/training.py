"""``<pipeline>.train``: snapshot validated data, train and register a candidate, judge it
against the champion on the same holdout, (ask a person,) promote it or keep it as challenger."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from loopline.plan.assets import champion_asset
from loopline.plan.params import (
    WindowEnd,
    bounds,
    params_from_model,
    reason_field,
    window_end_field,
)
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import (
    ApprovePromotion,
    JudgeCandidate,
    Promote,
    TrainingSnapshot,
    TrainModel,
    XCom,
)
from loopline.plan.vocabulary import (
    GPU_POOL,
    DagPlan,
    PipelineTarget,
    Stage,
    TaskPlan,
    approval_step,
    dag_plan,
)
from loopline.spec.sections import HyperParameters, PipelineSpec, TrainingSpec

_FORM = {"section": "Training"}


class SnapshotArguments(BaseModel):
    """The snapshot task's run arguments: which days of validated data to train on."""

    window_days: Annotated[
        int | None,
        Field(
            **bounds(TrainingSpec, "window_days"),
            title="Data window (days)",
            description="Train on the validated rows of this many days before the run; "
            "empty: the spec's training.window_days.",
            json_schema_extra=_FORM,
        ),
    ] = None
    window_end: Annotated[
        WindowEnd,
        window_end_field(
            "Train on the window ending here (UTC), e.g. 2024-06-30 for data with past dates; "
            "empty: when the run was due.",
            "Training",
        ),
    ] = None


class TrainArguments(BaseModel):
    """The train task's run arguments."""

    epochs: Annotated[
        int | None,
        Field(
            **bounds(HyperParameters, "epochs"),
            title="Epochs",
            description="At most this many epochs (early stopping may end sooner); empty: the "
            "spec's model.hyperparameters.epochs.",
            json_schema_extra=_FORM,
        ),
    ] = None
    reason: Annotated[
        str, reason_field("Why this retraining runs; kept in the model's lineage.", "Training")
    ] = "manual"


class TrainParams(TrainArguments, SnapshotArguments):
    """The ``<pipeline>.train`` trigger form: every task's arguments."""


def plan_training(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    training, promotion = spec.training, spec.promotion
    spec_file = paths.spec_ref(spec)
    params = params_from_model(
        TrainParams,
        {"epochs": spec.model.hyperparameters.epochs, "window_days": training.window_days},
    )
    tasks = [
        TaskPlan(
            "snapshot",
            TrainingSnapshot(
                spec_file,
                window_days="{{ params.window_days }}",
                window_end="{{ params.window_end }}",
            ),
            doc_md="The validated rows of the window, split into train and holdout by key; "
            "the objects read and their sha256 are recorded.",
        ),
        TaskPlan(
            "train",
            TrainModel(spec_file, epochs="{{ params.epochs }}", reason="{{ params.reason }}"),
            upstream=("snapshot",),
            pool=GPU_POOL,
            doc_md="Trains the spec's Keras model (GPU when visible) and registers it.",
        ),
        TaskPlan(
            "judge",
            JudgeCandidate(spec_file, version=XCom("train")),
            upstream=("train",),
            doc_md="Candidate and champion on the same holdout, against the promotion gates.",
        ),
    ]
    if promotion.require_approval:
        tasks.append(
            approval_step(
                ApprovePromotion(
                    spec.name, judgement=XCom("judge"), approvers=tuple(promotion.approvers)
                ),
                upstream="judge",
                approvers=promotion.approvers,
                what="the promotion",
            )
        )
    tasks.append(
        TaskPlan(
            "promote",
            Promote(spec_file, judgement=XCom("judge")),
            upstream=(tasks[-1].task_id,),
            outlets=(champion_asset(spec),),
            doc_md="Champion if it passed (a champion asset event), else challenger.",
        )
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.TRAIN,
        description=f"Retrains {spec.name} on validated data and promotes it if it is better",
        schedule=training.schedule,
        tasks=tuple(tasks),
        params=params,
        doc_md=(
            f"### {spec.name}: retraining and promotion\n"
            f"Trains on the last `window_days` of validated data, registers the model under "
            f"`s3://{spec.data.bucket}/models/{spec.name}/`, and promotes it to champion only "
            f"if it beats the champion on the same holdout ({promotion.metric} by at "
            f"least {promotion.min_improvement}) and passes every gate."
        ),
    )
