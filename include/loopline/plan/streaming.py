"""``<pipeline>.stream_deploy`` and ``<pipeline>.stream_monitor``: the streaming consumers.

Deploy runs on every champion event (the new version rolls out one replica at a time) and
from the form (deploy a version, scale, stop): a branch on the form's action runs one of the
deploy, scale and stop tasks, the same public operators a hand-written DAG uses. The monitor
runs every minute: it replaces dead replicas and scales on lag and latency, recording every
decision, "no change" included.

The operators' run-time arguments are typed by the models below (``VersionArguments``,
``SizeArguments``, ``ActionArguments``); the trigger form is made of the same models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from loopline.plan.assets import champion_asset
from loopline.plan.params import params_from_model
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import (
    ChooseConsumerAction,
    DeployConsumers,
    MonitorConsumers,
    ScaleConsumers,
    StopConsumers,
)
from loopline.plan.vocabulary import DagPlan, PipelineTarget, Stage, TaskPlan, dag_plan
from loopline.spec.sections import PipelineSpec

_FORM = {"section": "Streaming consumers"}
MONITOR_SCHEDULE = "* * * * *"

ConsumerAction = Literal["deploy", "scale", "stop"]


def _as_text(value: object) -> object:
    """A version number rendered as a native int (``render_template_as_native_obj``) is the
    same version as its text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


ModelVersion = Annotated[
    str,
    Field(
        pattern="^(champion|[0-9]+)$",
        title="Model version",
        description="champion, or a version number that is the champion or passed its "
        "judgement in the train DAG; any other version is refused before it is deployed.",
        json_schema_extra=_FORM,
    ),
    BeforeValidator(_as_text),  # after Field: before it, the pattern leaves the JSON Schema
]
Replicas = Annotated[
    int | None,
    Field(
        ge=1,
        le=1000,
        title="Replicas",
        description=(
            "How many; empty: as many as run now (at least streaming.replicas.min). Always "
            "within replicas.min..min(replicas.max, partitions), the limits the monitor scales "
            "in; it keeps at least this many for streaming.scale_in_after_seconds. To fix a "
            "count, set replicas.min."
        ),
        json_schema_extra=_FORM,
    ),
]


class VersionArguments(BaseModel):
    """Which model version replicas start on (roll, and the base of deploy and scale)."""

    model_version: ModelVersion = "champion"


class SizeArguments(VersionArguments):
    """Deploy's and scale's arguments: the version new replicas start on, and how many run."""

    replicas: Replicas = None


class ActionArguments(BaseModel):
    """Which of deploy, scale and stop a ``stream_deploy`` run takes."""

    action: Annotated[
        ConsumerAction,
        Field(
            title="Action",
            description="deploy: start the replicas, or roll every running one to the "
            "version; scale: run N replicas; stop: stop them all.",
            json_schema_extra=_FORM,
        ),
    ] = "deploy"


class DeployParams(SizeArguments, ActionArguments):
    """The ``<pipeline>.stream_deploy`` trigger form: the action, then its arguments."""


def plan_stream_deploy(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    streaming = spec.streaming
    if streaming is None:
        return None
    spec_file = paths.spec_ref(spec)
    version, replicas = "{{ params.model_version }}", "{{ params.replicas }}"
    actions: dict[str, TaskPlan] = {
        "deploy": TaskPlan(
            "deploy",
            DeployConsumers(spec_file, model_version=version, replicas=replicas),
            upstream=("choose",),
            doc_md="Creates the topics, then starts the replicas or rolls the running ones "
            "(one at a time, each healthy before the next; a version that never becomes "
            "healthy is rolled back).",
        ),
        "scale": TaskPlan(
            "scale",
            ScaleConsumers(spec_file, replicas=replicas, model_version=version),
            upstream=("choose",),
            doc_md="Runs the number of replicas asked; new ones start on the version.",
        ),
        "stop": TaskPlan(
            "stop",
            StopConsumers(spec_file),
            upstream=("choose",),
            doc_md="Stops every replica (each drains, commits and leaves the group).",
        ),
    }
    choose = TaskPlan(
        "choose",
        ChooseConsumerAction(
            action="{{ params.action }}",
            branches={action: task.task_id for action, task in actions.items()},
        ),
        doc_md="Runs the task of the form's action (deploy on a champion event).",
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.STREAM_DEPLOY,
        description=f"Deploys {spec.name}'s streaming consumers; every new champion rolls out",
        schedule=None,
        schedule_assets=(champion_asset(spec),),
        tasks=(choose, *actions.values()),
        params=params_from_model(DeployParams),
        doc_md=(
            f"### {spec.name}: streaming consumers\n"
            f"Replicas consume `{streaming.input_topic}`, score with the champion and produce "
            f"to `{streaming.output_topic}` (poison to `{streaming.dead_letters}`). Runs on "
            "every champion event and from the form."
        ),
    )


def plan_stream_monitor(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    streaming = spec.streaming
    if streaming is None:
        return None
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.STREAM_MONITOR,
        description=f"Keeps {spec.name}'s consumers alive and sized to their lag and latency",
        schedule=MONITOR_SCHEDULE,
        tasks=(
            TaskPlan(
                "monitor",
                MonitorConsumers(paths.spec_ref(spec)),
                doc_md="Replaces dead replicas, then scales: ceil(lag / lag_per_replica) "
                "within replicas.min and min(replicas.max, partitions), p99 above target "
                "adds one (a 6 s p99 above twice the target, at once); scale-in waits 300 s.",
            ),
        ),
        doc_md=(
            f"### {spec.name}: consumer monitor\n"
            f"Every minute: dead replicas replaced, then auto-scaling on the committed lag of "
            f"`{streaming.consumer_group}` and the replicas' p99; every decision is a record."
        ),
    )
