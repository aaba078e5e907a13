"""Render pipeline plans into Airflow DAGs: the only place where specs meet Airflow.

``dags/loopline_pipelines.py`` builds here the DAGs of every spec that checks clean
(``loopline.plan.check``: loads, names an existing suite, plans). The others are raised by
``dags/loopline_spec_check.py`` through the same check, so Airflow shows them as one import
error naming file, field and reason while the good specs' DAGs keep loading: Airflow drops
every DAG of a file whose import fails, hence two files. Rendering is guarded per spec too: a
spec whose DAGs cannot be constructed is logged with its file and skipped, alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    Asset,
    AssetAny,
    AssetOrTimeSchedule,
    BaseOperator,
    CronTriggerTimetable,
    Param,
)

from loopline.airflow.callbacks import task_callbacks
from loopline.airflow.operators import (
    ApprovePromotionOperator,
    ApproveShadowPromotionOperator,
    BatchScoreOperator,
    ChooseConsumerActionOperator,
    ChooseReplayOperator,
    DeployConsumersOperator,
    DriftAuditOperator,
    DriftReportOperator,
    GroupLandedOperator,
    JudgeCandidateOperator,
    JudgeShadowOperator,
    LandDemoBatchOperator,
    MonitorConsumersOperator,
    PromoteChallengerOperator,
    PromoteOperator,
    PublishValidatedOperator,
    ReplayDeadLettersOperator,
    ReplayQuarantinedOperator,
    RetrainOnDriftOperator,
    RollbackChampionOperator,
    ScaleConsumersOperator,
    StartShadowOperator,
    StopConsumersOperator,
    StopShadowOperator,
    TrainingSnapshotOperator,
    TrainModelOperator,
    ValidateFilesOperator,
    ValidationVerdictOperator,
    WaitForLandedFilesSensor,
)
from loopline.plan import AssetRef, DagPlan, ParamPlan, TaskKind, TaskPlan
from loopline.plan.check import PlannedPipeline, check_pipelines
from loopline.plan.tasks import XCom

log = logging.getLogger(__name__)

# Every task kind a plan may name, and the operator that carries it out.
OPERATORS: dict[TaskKind, type[BaseOperator]] = {
    TaskKind.LAND_DEMO_BATCH: LandDemoBatchOperator,
    TaskKind.WAIT_FOR_OBJECTS: WaitForLandedFilesSensor,
    TaskKind.GROUP_LANDED: GroupLandedOperator,
    TaskKind.VALIDATE_FILES: ValidateFilesOperator,
    TaskKind.PUBLISH_VALIDATED: PublishValidatedOperator,
    TaskKind.VALIDATION_VERDICT: ValidationVerdictOperator,
    TaskKind.TRAINING_SNAPSHOT: TrainingSnapshotOperator,
    TaskKind.TRAIN_MODEL: TrainModelOperator,
    TaskKind.JUDGE_CANDIDATE: JudgeCandidateOperator,
    TaskKind.APPROVE_PROMOTION: ApprovePromotionOperator,
    TaskKind.PROMOTE: PromoteOperator,
    TaskKind.ROLLBACK: RollbackChampionOperator,
    TaskKind.START_SHADOW: StartShadowOperator,
    TaskKind.JUDGE_SHADOW: JudgeShadowOperator,
    TaskKind.APPROVE_SHADOW_PROMOTION: ApproveShadowPromotionOperator,
    TaskKind.PROMOTE_CHALLENGER: PromoteChallengerOperator,
    TaskKind.STOP_SHADOW: StopShadowOperator,
    TaskKind.BATCH_SCORE: BatchScoreOperator,
    TaskKind.DRIFT_AUDIT: DriftAuditOperator,
    TaskKind.RETRAIN_ON_DRIFT: RetrainOnDriftOperator,
    TaskKind.DRIFT_REPORT: DriftReportOperator,
    TaskKind.CHOOSE_CONSUMER_ACTION: ChooseConsumerActionOperator,
    TaskKind.DEPLOY_CONSUMERS: DeployConsumersOperator,
    TaskKind.SCALE_CONSUMERS: ScaleConsumersOperator,
    TaskKind.STOP_CONSUMERS: StopConsumersOperator,
    TaskKind.MONITOR_CONSUMERS: MonitorConsumersOperator,
    TaskKind.CHOOSE_REPLAY: ChooseReplayOperator,
    TaskKind.REPLAY_QUARANTINED: ReplayQuarantinedOperator,
    TaskKind.REPLAY_DEAD_LETTERS: ReplayDeadLettersOperator,
}


def build_dags(folder: Path) -> dict[str, DAG]:
    """The DAGs of every spec in `folder` that checks clean; bad specs are skipped and logged
    (``loopline_spec_check.py`` raises them as an import error)."""
    check = check_pipelines(folder)
    for error in check.errors:
        log.warning("skipping pipeline spec: %s", error)
    dags: dict[str, DAG] = {}
    for pipeline in check.pipelines:
        dags.update(render_pipeline(pipeline))
    return dags


def render_pipeline(pipeline: PlannedPipeline) -> dict[str, DAG]:
    """Every DAG of one pipeline, or none (logged, naming its spec file) if any fails."""
    try:
        return {plan.dag_id: render(plan, str(pipeline.path)) for plan in pipeline.dags}
    except Exception:
        log.exception("%s: its DAGs cannot be built; the other pipelines load", pipeline.path)
        return {}


def render(plan: DagPlan, spec_path: str | None = None) -> DAG:
    """One DAG from its plan; the same plan always renders the same DAG. With its spec's
    `spec_path`, every failed try of its tasks leaves a debug bundle (`DebugBundleOnFailure`)."""
    with DAG(
        dag_id=plan.dag_id,
        description=plan.description,
        doc_md=plan.doc_md,
        schedule=_schedule(plan),
        start_date=plan.start_date,
        catchup=False,
        max_active_runs=plan.max_active_runs,
        tags=set(plan.tags),
        params={param.name: _param(param) for param in plan.params},
        default_args={
            "owner": plan.owner,
            "retries": plan.retries,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": 2.0,
        },
        # Params render to their JSON types (an int stays an int) in templated arguments.
        render_template_as_native_obj=True,
    ) as dag:
        tasks: dict[str, Any] = {}
        for task in plan.tasks:  # plans list a task after the tasks it expands over
            tasks[task.task_id] = _operator(task, tasks, spec_path)
        for task in plan.tasks:
            for upstream in task.upstream:
                tasks[upstream] >> tasks[task.task_id]
    return dag


def _schedule(plan: DagPlan) -> Any:
    """A cron string, asset events (any one of them starts a run), or either of the two."""
    if not plan.schedule_assets:
        return plan.schedule
    # A list of assets would wait for an event of every one of them: AssetAny waits for one.
    assets = AssetAny(*(_asset(asset) for asset in plan.schedule_assets))
    if plan.schedule is None:
        return assets
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(plan.schedule, timezone="UTC"), assets=assets
    )


def _operator(task: TaskPlan, built: dict[str, Any], spec_path: str | None) -> Any:
    common: dict[str, Any] = {
        "task_id": task.task_id,
        "outlets": [_asset(asset) for asset in task.outlets],
        "doc_md": task.doc_md or None,
        "trigger_rule": str(task.trigger_rule),
        **({"pool": task.pool} if task.pool else {}),
        **(task_callbacks(spec_path) if spec_path else {}),
    }
    operator = OPERATORS[task.kind]
    arguments = {  # a value read from another task: that task's output, resolved at run time
        name: built[value.task_id].output if isinstance(value, XCom) else value
        for name, value in task.args.operator_kwargs().items()
    }
    expansions = task.args.expansions()
    if not expansions:
        return operator(**common, **arguments)
    mapped = {name: built[ref.task_id].output for name, ref in expansions.items()}
    # Each mapped task is named in the UI by what it got (its files), not 0, 1, 2: by the
    # operator's own `map_label` where it has one, else by the item itself.
    label = "map_label" if hasattr(operator, "map_label") else next(iter(mapped))
    common["map_index_template"] = "{{ task." + label + " }}"
    return operator.partial(**common, **arguments).expand(**mapped)


def _asset(asset: AssetRef) -> Asset:
    return Asset(name=asset.name, uri=asset.uri)


def _param(param: ParamPlan) -> Param:
    return Param(
        param.default,
        title=param.title,
        description=param.description,
        section=param.section,
        **param.schema,
    )
