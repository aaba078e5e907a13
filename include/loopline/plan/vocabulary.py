"""The plan's vocabulary: stages, assets, run parameters, tasks and DAGs; no Airflow in it.

A task is an id and its typed arguments (the arguments' class says which kind of task it is,
see ``loopline.plan.tasks``). A DAG plan checks its own wiring when it is built: every task it
names exists, and every XCom a task reads comes from a task upstream of it. A wiring mistake is
a ``PlanError`` while specs are planned, never a ``None`` pulled at run time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from loopline.plan.tasks import TaskArgs, TaskKind
from loopline.spec.sections import PipelineSpec

START_DATE = datetime(2026, 1, 1)
GPU_POOL = "gpu"  # one slot: two trainings never share a card (see airflow_settings.yaml)
SPARK_POOL = "spark"


class Stage(StrEnum):
    """A stage of the loop that has a DAG; the DAG id is ``<pipeline>.<stage>``."""

    DEMO_FEED = "demo_feed"
    VALIDATE = "validate"
    TRAIN = "train"
    ROLLBACK = "rollback"
    SHADOW = "shadow"
    BATCH_SCORE = "batch_score"
    DRIFT_AUDIT = "drift_audit"
    STREAM_DEPLOY = "stream_deploy"
    STREAM_MONITOR = "stream_monitor"
    REPLAY = "replay"


def dag_id(pipeline: str, stage: Stage | str) -> str:
    """``<pipeline>.<stage>``: the one place a DAG id is made."""
    return f"{pipeline}.{Stage(stage)}"


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"  # runs after its upstream ended, whatever the outcome


class PlanError(ValueError):
    """A plan whose wiring cannot work: a missing task or an XCom read from a non-upstream."""


@dataclass(frozen=True)
class AssetRef:
    name: str
    uri: str


@dataclass(frozen=True)
class ParamPlan:
    """A run parameter with its JSON schema; Airflow validates it and draws the trigger form."""

    name: str
    default: Any
    schema: Mapping[str, Any]
    title: str
    description: str
    section: str = "Run parameters"


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    args: TaskArgs
    upstream: tuple[str, ...] = ()
    outlets: tuple[AssetRef, ...] = ()
    doc_md: str = ""
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    pool: str | None = None

    @property
    def kind(self) -> TaskKind:
        return self.args.kind

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Direct upstream tasks: the declared ones and those this task is mapped over."""
        return (*self.upstream, *(ref.task_id for ref in self.args.expansions().values()))


def approval_step(args: TaskArgs, upstream: str, approvers: Sequence[str], what: str) -> TaskPlan:
    """The step in which a person approves (or rejects) `what` before it happens
    (``promotion.require_approval``), named ``approve`` in every DAG that has one."""
    who = f": one of {', '.join(approvers)}." if approvers else "."
    return TaskPlan(
        "approve",
        args,
        upstream=(upstream,),
        doc_md=f"A person approves (or rejects) {what} in the Airflow UI{who}",
    )


@dataclass(frozen=True)
class DagPlan:
    dag_id: str
    pipeline: str
    stage: Stage
    description: str
    schedule: str | None
    owner: str
    retries: int
    tags: tuple[str, ...]
    tasks: tuple[TaskPlan, ...]
    params: tuple[ParamPlan, ...] = ()
    doc_md: str = ""
    max_active_runs: int = 1
    schedule_assets: tuple[AssetRef, ...] = ()  # runs on these assets' events (or schedule)
    start_date: datetime = START_DATE

    def __post_init__(self) -> None:
        problems = wiring_problems(self.tasks)
        if problems:
            raise PlanError(f"{self.dag_id}: " + "; ".join(problems))

    def task(self, task_id: str) -> TaskPlan:
        return next(task for task in self.tasks if task.task_id == task_id)


def wiring_problems(tasks: tuple[TaskPlan, ...]) -> list[str]:
    """Every way the tasks' wiring is broken; tasks must be listed after their upstream."""
    problems: list[str] = []
    ancestors: dict[str, set[str]] = {}
    for task in tasks:
        if task.task_id in ancestors:
            problems.append(f"task id {task.task_id!r} is used twice")
            continue
        seen: set[str] = set()
        for upstream in task.depends_on:
            if upstream not in ancestors:
                problems.append(
                    f"task {task.task_id!r} depends on {upstream!r}, which is not a task "
                    "listed before it"
                )
                continue
            seen |= {upstream, *ancestors[upstream]}
        for argument, ref in task.args.xcom_inputs().items():
            if ref.task_id not in seen:
                problems.append(
                    f"task {task.task_id!r} reads {argument} from {ref.task_id!r}, which is not "
                    f"upstream of it (upstream: {', '.join(sorted(seen)) or 'none'})"
                )
        ancestors[task.task_id] = seen
    return problems


@dataclass(frozen=True)
class PipelineTarget:
    """What every DAG of one pipeline shares: the header fields taken from its spec."""

    pipeline: str
    owner: str
    retries: int
    tags: tuple[str, ...]

    @classmethod
    def of(cls, spec: PipelineSpec) -> PipelineTarget:
        return cls(spec.name, spec.owner, spec.retries, tuple(spec.all_tags))


def dag_plan(
    target: PipelineTarget,
    stage: Stage,
    *,
    description: str,
    schedule: str | None,
    tasks: tuple[TaskPlan, ...],
    doc_md: str,
    params: tuple[ParamPlan, ...] = (),
    schedule_assets: tuple[AssetRef, ...] = (),
) -> DagPlan:
    """A DAG of `stage` for the pipeline, with the header every Loopline DAG has."""
    return DagPlan(
        dag_id=dag_id(target.pipeline, stage),
        pipeline=target.pipeline,
        stage=stage,
        description=description,
        schedule=schedule,
        owner=target.owner,
        retries=target.retries,
        tags=(*target.tags, f"stage:{stage}"),
        tasks=tasks,
        params=params,
        doc_md=doc_md,
        schedule_assets=schedule_assets,
    )
