"""A neutral plan between specs and Airflow: which DAGs a pipeline has, and their tasks.

Nothing here imports Airflow. One module per stage holds that stage's planner; the factory in
``loopline.airflow.factory`` renders every plan, so adding a model is a new spec, not new
Python. ``check`` is the one code path that ``loopline spec check`` and the DAG files share.
"""

from __future__ import annotations

from collections.abc import Callable

from loopline.plan.batch import plan_batch_scoring
from loopline.plan.demo import plan_demo_feed
from loopline.plan.drift import plan_drift_audit
from loopline.plan.paths import ProjectPaths
from loopline.plan.replay import plan_replay
from loopline.plan.rollback import plan_rollback
from loopline.plan.shadow import plan_shadow
from loopline.plan.streaming import plan_stream_deploy, plan_stream_monitor
from loopline.plan.tasks import TaskKind
from loopline.plan.training import plan_training
from loopline.plan.validation import plan_validation
from loopline.plan.vocabulary import (
    GPU_POOL,
    AssetRef,
    DagPlan,
    ParamPlan,
    PlanError,
    Stage,
    TaskPlan,
    TriggerRule,
    dag_id,
)
from loopline.spec.sections import PipelineSpec

Planner = Callable[[PipelineSpec, ProjectPaths], DagPlan | None]

# Every stage's planner; a stage that does not apply to a spec returns None.
PLANNERS: tuple[Planner, ...] = (
    plan_demo_feed,
    plan_validation,
    plan_training,
    plan_rollback,
    plan_shadow,
    plan_batch_scoring,
    plan_drift_audit,
    plan_stream_deploy,
    plan_stream_monitor,
    plan_replay,
)


def plan_pipeline(spec: PipelineSpec, paths: ProjectPaths) -> list[DagPlan]:
    return [plan for planner in PLANNERS if (plan := planner(spec, paths)) is not None]


__all__ = [
    "GPU_POOL",
    "PLANNERS",
    "AssetRef",
    "DagPlan",
    "ParamPlan",
    "PlanError",
    "ProjectPaths",
    "Stage",
    "TaskKind",
    "TaskPlan",
    "TriggerRule",
    "dag_id",
    "plan_pipeline",
]
