"""Render pipeline plans into Airflow DAGs: the only place where specs meet Airflow.

``dags/loopline_pipelines.py`` builds here the DAGs of every spec that loads. The specs that do
not are raised by ``dags/loopline_spec_check.py`` (``loopline.spec.raise_for_bad_specs``), so
Airflow shows them as an import error naming file, field and reason while the good specs' DAGs
keep loading: Airflow drops every DAG of a file whose import fails, hence two files.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, BaseOperator, CronTriggerTimetable, Param

from loopline.airflow.operators import (
    ApprovePromotionOperator,
    BatchScoreOperator,
    JudgeCandidateOperator,
    LandDemoBatchOperator,
    ListObjectsOperator,
    PromoteOperator,
    PublishValidatedOperator,
    RollbackChampionOperator,
    TrainingSnapshotOperator,
    TrainModelOperator,
    ValidateBatchOperator,
    ValidationVerdictOperator,
    WaitForLandedFilesSensor,
)
from loopline.plan import (
    AssetRef,
    DagPlan,
    ParamPlan,
    ProjectPaths,
    TaskKind,
    TaskPlan,
    plan_pipeline,
)
from loopline.spec import load_specs

log = logging.getLogger(__name__)

# Every task kind a plan may name, and the operator that carries it out.
OPERATORS: dict[TaskKind, type[BaseOperator]] = {
    TaskKind.LAND_DEMO_BATCH: LandDemoBatchOperator,
    TaskKind.WAIT_FOR_OBJECTS: WaitForLandedFilesSensor,
    TaskKind.LIST_OBJECTS: ListObjectsOperator,
    TaskKind.VALIDATE_BATCH: ValidateBatchOperator,
    TaskKind.PUBLISH_VALIDATED: PublishValidatedOperator,
    TaskKind.VALIDATION_VERDICT: ValidationVerdictOperator,
    TaskKind.TRAINING_SNAPSHOT: TrainingSnapshotOperator,
    TaskKind.TRAIN_MODEL: TrainModelOperator,
    TaskKind.JUDGE_CANDIDATE: JudgeCandidateOperator,
    TaskKind.APPROVE_PROMOTION: ApprovePromotionOperator,
    TaskKind.PROMOTE: PromoteOperator,
    TaskKind.ROLLBACK: RollbackChampionOperator,
    TaskKind.BATCH_SCORE: BatchScoreOperator,
}


def build_dags(folder: Path) -> dict[str, DAG]:
    """The DAGs of every spec in `folder` that loads; bad specs are skipped and logged."""
    spec_set = load_specs(folder)
    for error in spec_set.errors:
        log.warning("skipping pipeline spec: %s", error)
    paths = ProjectPaths.beside(folder)
    plans = [plan for spec in spec_set.specs.values() for plan in plan_pipeline(spec, paths)]
    return {plan.dag_id: render(plan) for plan in plans}


def render(plan: DagPlan) -> DAG:
    """One DAG from its plan; the same plan always renders the same DAG."""
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
            tasks[task.task_id] = _operator(task, tasks)
        for task in plan.tasks:
            for upstream in task.upstream:
                tasks[upstream] >> tasks[task.task_id]
    return dag


def _schedule(plan: DagPlan) -> Any:
    """A cron string, asset events, or either of the two."""
    assets = [_asset(asset) for asset in plan.schedule_assets]
    if not assets:
        return plan.schedule
    if plan.schedule is None:
        return assets
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(plan.schedule, timezone="UTC"), assets=assets
    )


def _operator(task: TaskPlan, built: dict[str, Any]) -> Any:
    common = {
        "task_id": task.task_id,
        "outlets": [_asset(asset) for asset in task.outlets],
        "doc_md": task.doc_md or None,
        "trigger_rule": task.trigger_rule,
        **({"pool": task.pool} if task.pool else {}),
    }
    operator = OPERATORS[task.kind]
    if not task.expand:
        return operator(**common, **task.arguments)
    mapped = {argument: built[source].output for argument, source in task.expand.items()}
    return operator.partial(**common, **task.arguments).expand(**mapped)


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
