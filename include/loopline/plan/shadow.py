"""``<pipeline>.shadow``: a challenger judged on live traffic, promoted when it passes.

Planned only for a spec with ``promotion.shadow``, where a candidate that passed the offline
gate waits as challenger. Each run: the challenger awaiting a verdict is put in shadow on the
replicas (once), its shadow scores of the last `days` days are paired with the champion's and
the verdict recorded; a pass promotes it (through the train DAG's approval step when
``promotion.require_approval``), and a pass or a fail ends the shadow. Pending leaves it on.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from loopline.plan.assets import champion_asset
from loopline.plan.params import params_from_model
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import (
    ApproveShadowPromotion,
    JudgeShadow,
    PromoteChallenger,
    StartShadow,
    StopShadow,
    XCom,
)
from loopline.plan.vocabulary import (
    DagPlan,
    PipelineTarget,
    Stage,
    TaskPlan,
    approval_step,
    dag_plan,
)
from loopline.spec.sections import PipelineSpec

# Shadow pairs accrue with live traffic, over hours: hourly bounds how long a challenger that
# has enough pairs waits for its promotion, and a run that finds nothing to judge reads only
# two aliases and a few records. Not a spec field until a pipeline needs another rhythm.
SHADOW_SCHEDULE = "@hourly"
MAX_SHADOW_DAYS = 31  # the prediction log's days read at most by one verdict


class ShadowArguments(BaseModel):
    """The judge_shadow task's run arguments, and the ``<pipeline>.shadow`` trigger form."""

    days: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_SHADOW_DAYS,
            title="Days of shadow traffic",
            description="Pair the challenger's and the champion's shadow scores of this many "
            "days, today included.",
            json_schema_extra={"section": "Shadow verdict"},
        ),
    ] = 7


def plan_shadow(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    promotion = spec.promotion
    if promotion.shadow is None:
        return None
    spec_file = paths.spec_ref(spec)
    tasks = [
        TaskPlan(
            "start_shadow",
            StartShadow(spec_file),
            doc_md="The challenger whose judgement passed against the current champion and "
            "awaits its shadow verdict, put in shadow on the replicas if it is not already; "
            "none: the run skips.",
        ),
        TaskPlan(
            "judge_shadow",
            JudgeShadow(spec_file, challenger=XCom("start_shadow"), days="{{ params.days }}"),
            upstream=("start_shadow",),
            doc_md="Its shadow scores paired with the champion's by event id; the verdict "
            "(pass, fail or pending) recorded with its numbers and reasons.",
        ),
        TaskPlan(
            "stop_shadow",
            StopShadow(spec_file, verdict=XCom("judge_shadow")),
            upstream=("judge_shadow",),
            doc_md="A pass or a fail ends the shadow; pending leaves it on (skipped).",
        ),
    ]
    if promotion.require_approval:
        tasks.append(
            approval_step(
                ApproveShadowPromotion(
                    spec.name, verdict=XCom("judge_shadow"), approvers=tuple(promotion.approvers)
                ),
                upstream="judge_shadow",
                approvers=promotion.approvers,
                what="the shadow winner's promotion",
            )
        )
    tasks.append(
        TaskPlan(
            "promote_challenger",
            PromoteChallenger(spec_file, verdict=XCom("judge_shadow")),
            upstream=("approve" if promotion.require_approval else "judge_shadow",),
            outlets=(champion_asset(spec),),
            doc_md="On a pass, champion (a champion asset event: the consumers roll); "
            "pending or fail: skipped, with the reasons.",
        )
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.SHADOW,
        description=f"Judges {spec.name}'s challenger on live traffic and promotes it if it passes",
        schedule=SHADOW_SCHEDULE,
        tasks=tuple(tasks),
        params=params_from_model(ShadowArguments),
        doc_md=(
            f"### {spec.name}: the challenger in shadow\n"
            f"The replicas score {promotion.shadow.share:.0%} of live traffic with the "
            "challenger beside the champion; each run pairs the two on the same events and "
            f"decides (at least {promotion.shadow.min_pairs} pairs, agreement >= "
            f"{promotion.shadow.min_agreement}, score shift <= "
            f"{promotion.shadow.max_score_shift}, p99 ratio <= "
            f"{promotion.shadow.max_p99_ratio}). A pass promotes the challenger; a pass or a "
            "fail ends the shadow."
        ),
    )
