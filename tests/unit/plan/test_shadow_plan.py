"""``<pipeline>.shadow``: planned only for a spec with promotion.shadow, its tasks wired so
that a final verdict ends the shadow whether or not the promotion runs."""

from __future__ import annotations

from loopline.plan import ProjectPaths, Stage, TaskKind, plan_pipeline
from loopline.plan.shadow import SHADOW_SCHEDULE
from loopline.plan.tasks import XCom
from loopline.spec import PipelineSpec, load_spec
from loopline.spec.sections import ShadowSpec
from support.paths import PIPELINES

PATHS = ProjectPaths.beside(PIPELINES)
SPEC = load_spec(PIPELINES / "card_fraud.yaml")


def shadowed(**promotion: object) -> PipelineSpec:
    changes = {"shadow": ShadowSpec(min_pairs=200, share=0.25), **promotion}
    return SPEC.model_copy(update={"promotion": SPEC.promotion.model_copy(update=changes)})


def shadow_dag(spec: PipelineSpec):
    [plan] = [plan for plan in plan_pipeline(spec, PATHS) if plan.stage == Stage.SHADOW]
    return plan


def test_a_spec_without_promotion_shadow_has_no_shadow_dag() -> None:
    assert Stage.SHADOW not in {plan.stage for plan in plan_pipeline(SPEC, PATHS)}


def test_a_spec_with_promotion_shadow_has_the_shadow_dag_and_its_tasks() -> None:
    plan = shadow_dag(shadowed())

    assert plan.dag_id == "card_fraud.shadow"
    assert plan.schedule == SHADOW_SCHEDULE == "@hourly"
    assert "stage:shadow" in plan.tags
    kinds = {task.task_id: task.kind for task in plan.tasks}
    assert kinds == {
        "start_shadow": TaskKind.START_SHADOW,
        "judge_shadow": TaskKind.JUDGE_SHADOW,
        "stop_shadow": TaskKind.STOP_SHADOW,
        "promote_challenger": TaskKind.PROMOTE_CHALLENGER,
    }
    assert plan.task("judge_shadow").args.challenger == XCom("start_shadow")
    assert plan.task("judge_shadow").args.days == "{{ params.days }}"
    # Stopping hangs off the verdict, beside the promotion: a fail (promotion skipped) and a
    # rejected approval end the shadow too.
    assert plan.task("stop_shadow").upstream == ("judge_shadow",)
    assert plan.task("promote_challenger").upstream == ("judge_shadow",)
    [champion] = plan.task("promote_challenger").outlets
    assert champion.uri == "s3://loopline/models/card_fraud/aliases/champion"
    [days] = plan.params
    assert (days.name, days.default, days.schema["minimum"], days.schema["maximum"]) == (
        "days",
        7,
        1,
        31,
    )
    assert "25%" in plan.doc_md and "200 pairs" in plan.doc_md


def test_require_approval_puts_the_approval_step_before_the_promotion() -> None:
    plan = shadow_dag(shadowed(require_approval=True, approvers=["ana"]))

    approve = plan.task("approve")
    assert approve.kind is TaskKind.APPROVE_SHADOW_PROMOTION
    assert (approve.args.verdict, approve.args.approvers) == (XCom("judge_shadow"), ("ana",))
    assert plan.task("promote_challenger").upstream == ("approve",)
    assert plan.task("stop_shadow").upstream == ("judge_shadow",)
