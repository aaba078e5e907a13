"""``<pipeline>.rollback``: one manual trigger restores the previous champion."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel

from loopline.plan.assets import champion_asset
from loopline.plan.params import params_from_model, reason_field
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import Rollback
from loopline.plan.vocabulary import DagPlan, PipelineTarget, Stage, TaskPlan, dag_plan
from loopline.spec.sections import PipelineSpec


class RollbackParams(BaseModel):
    reason: Annotated[
        str, reason_field("Why the champion is rolled back; kept in the alias history.", "Rollback")
    ] = ""  # no default reason: the form asks for one


def plan_rollback(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    # Retries are safe: a retry sees this run's own move and does not roll back twice.
    rollback = TaskPlan(
        "rollback",
        Rollback(paths.spec_ref(spec), reason="{{ params.reason }}"),
        outlets=(champion_asset(spec),),
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.ROLLBACK,
        description=f"Restores the champion {spec.name} had before its last promotion",
        schedule=None,
        tasks=(rollback,),
        params=params_from_model(RollbackParams),
        doc_md=f"### {spec.name}: rollback\nTrigger with a reason to restore the previous "
        "champion. Each rollback undoes one more promotion.",
    )
