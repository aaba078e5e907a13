"""``<pipeline>.drift_audit``: audit the recent validated data (and the champion's scores and
quality on it) against the champion's training data; retrain when the spec's limits say so."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel

from loopline.plan.assets import predictions_asset, validated_asset
from loopline.plan.params import WindowEnd, params_from_model, window_end_field
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import DriftAudit, DriftReport, RetrainOnDrift, XCom
from loopline.plan.vocabulary import DagPlan, PipelineTarget, Stage, TaskPlan, dag_id, dag_plan
from loopline.spec.sections import PipelineSpec

REFERENCES = {
    "champion": "the rows the champion was trained on",
    "window": "the validated data of the days before them",
}


class AuditParams(BaseModel):
    """The audit task's run arguments, and the ``<pipeline>.drift_audit`` trigger form."""

    window_end: Annotated[
        WindowEnd,
        window_end_field(
            "Audit the window ending here (UTC), e.g. 2024-06-30 for data with past dates; "
            "empty: when the run was due.",
            "Drift audit",
        ),
    ] = None


def plan_drift_audit(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    drift = spec.drift
    assets = [validated_asset(spec)]
    if spec.batch_inference is not None:
        assets.append(predictions_asset(spec, spec.batch_inference.output_prefix))
    tasks = (
        TaskPlan(
            "audit",
            DriftAudit(paths.spec_ref(spec), window_end="{{ params.window_end }}"),
            doc_md="Scores every feature, the label, the champion's batch scores and its "
            "quality against the reference; records the verdict and the decision (the report "
            "is rendered by `report`, after).",
        ),
        TaskPlan(
            "retrain",
            RetrainOnDrift(dag_id(spec.name, Stage.TRAIN), decision=XCom("audit")),
            upstream=("audit",),
            doc_md=f"Starts `{spec.name}.train` with the audit's reason when it decided to "
            "retrain; skipped otherwise.",
        ),
        # Beside retrain, not before it: Evidently's report costs seconds per audit and
        # retraining never waits for it; a failed render fails this task only.
        TaskPlan(
            "report",
            DriftReport(paths.spec_ref(spec)),
            upstream=("audit",),
            doc_md="Renders Evidently's report of the audit from the two samples its record "
            "names, and writes it where the record and the retrain reason say it is.",
        ),
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.DRIFT_AUDIT,
        description=f"Audits {spec.name}'s recent data for drift; drift starts retraining",
        schedule=drift.schedule,
        schedule_assets=tuple(assets),
        tasks=tasks,
        params=params_from_model(AuditParams),
        doc_md=(
            f"### {spec.name}: drift audit\n"
            f"The validated batches of the last {drift.window_days} day(s) against "
            f"{REFERENCES[drift.reference]}: per-feature drift (the test Evidently would "
            "choose, with its threshold), label drift, prediction drift and the champion's "
            "quality on labelled rows. Runs on its schedule and on every validated or "
            f"predictions event. Crossing `drift:` limits starts `{spec.name}.train` "
            f"(cooldown {drift.cooldown_hours:g} h). Reports (rendered by `report` after the "
            "decision): "
            f"`s3://{spec.data.bucket}/reports/{spec.name}/<run>/drift.html`."
        ),
    )
