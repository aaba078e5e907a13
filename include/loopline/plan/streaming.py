"""``<pipeline>.stream_deploy`` and ``<pipeline>.stream_monitor``: the streaming consumers.

Deploy runs on every champion event (the new version rolls out one replica at a time) and
from the form (deploy a version, scale, stop). The monitor runs every minute: it replaces dead
replicas and scales on lag and latency, recording every decision, "no change" included.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from loopline.plan.assets import champion_asset
from loopline.plan.model import DagPlan, PipelineTarget, Stage, TaskPlan, dag_plan
from loopline.plan.params import params_from_model
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import DeployConsumers, MonitorConsumers
from loopline.spec.model import PipelineSpec

_FORM = {"section": "Streaming consumers"}
MONITOR_SCHEDULE = "* * * * *"


class DeployParams(BaseModel):
    action: Annotated[
        Literal["deploy", "scale", "stop"],
        Field(
            title="Action",
            description="deploy: roll every replica to the version; scale: run N replicas; "
            "stop: stop them all.",
            json_schema_extra=_FORM,
        ),
    ] = "deploy"
    model_version: Annotated[
        str,
        Field(
            pattern="^(champion|[0-9]+)$",
            title="Model version",
            description="champion, or a version number that is the champion or passed its "
            "judgement in the train DAG; any other version is refused before it is deployed.",
            json_schema_extra=_FORM,
        ),
    ] = "champion"
    replicas: Annotated[
        int | None,
        Field(
            ge=0,
            le=1000,
            title="Replicas",
            description=(
                "How many; empty: as many as run now (at least streaming.replicas.min). The "
                "monitor keeps at least this many for streaming.scale_in_after_seconds, then "
                "scales within replicas.min..max: to fix a count, set replicas.min."
            ),
            json_schema_extra=_FORM,
        ),
    ] = None


def plan_stream_deploy(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    streaming = spec.streaming
    if streaming is None:
        return None
    deploy = TaskPlan(
        "deploy",
        DeployConsumers(
            str(paths.spec_file(spec)),
            action="{{ params.action }}",
            model_version="{{ params.model_version }}",
            replicas="{{ params.replicas }}",
        ),
        doc_md="Creates the topics, then starts, rolls (one replica at a time, each healthy "
        "before the next; a version that never becomes healthy is rolled back), scales or "
        "stops the consumers.",
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.STREAM_DEPLOY,
        description=f"Deploys {spec.name}'s streaming consumers; every new champion rolls out",
        schedule=None,
        schedule_assets=(champion_asset(spec),),
        tasks=(deploy,),
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
                MonitorConsumers(str(paths.spec_file(spec))),
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
