"""Operators of the ``<pipeline>.shadow`` DAG: a challenger judged on live traffic.

Start the shadow, judge it, (ask a person,) promote the winner, stop the shadow. Each reads
its typed arguments, calls the library (``loopline.promotion.shadow`` decides and records the
verdict and the promotion, ``loopline.streaming.actions.shadow_consumers`` the shadow itself),
logs and returns. The verdict passes between tasks as the judge task's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.airflow.lineage import NOTHING, TaskLineage, model_version
from loopline.airflow.log_context import bind_model_version
from loopline.airflow.operators.arguments import typed
from loopline.airflow.operators.base import PipelineOperator
from loopline.airflow.operators.streaming import ConsumersOperator, finish_action
from loopline.airflow.operators.training import (
    SUMMARY_KEY,
    ApprovePromotionOperator,
    alias_moved_lineage,
    announce_champion_move,
)
from loopline.plan.shadow import ShadowArguments
from loopline.registry.layout import CHAMPION

if TYPE_CHECKING:
    from loopline.promotion.shadow import ShadowVerdict


def _verdict(payload: Any) -> ShadowVerdict:
    from loopline.promotion.shadow import ShadowVerdict

    return ShadowVerdict.model_validate(payload)


class StartShadowOperator(ConsumersOperator):
    """Find the challenger that awaits its shadow verdict (its judgement passed against the
    current champion, no pass or fail verdict against it yet) and have the replicas shadow it
    on ``promotion.shadow.share`` of their traffic, unless they already do. None: the task,
    and the run's other tasks, skip. Returns the challenger and its champion."""

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.shadow import challenger_awaiting_verdict
        from loopline.streaming.actions import shadow_consumers

        challenger = challenger_awaiting_verdict(self.registry, self.spec)
        if challenger.version is None:
            raise AirflowSkipException(
                f"no challenger awaits a shadow verdict: {challenger.reason}"
            )
        bind_model_version(challenger.version)
        self.log.info("%s", challenger.reason)
        finish_action(
            self, shadow_consumers(self.consumers, self.run_context(context), challenger.version)
        )
        return challenger.model_dump(mode="json")

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The challenger put in shadow."""
        if not outcome or outcome.get("version") is None:
            return NOTHING
        return TaskLineage.of(
            [model_version(self.spec.data.bucket, self.spec.name, outcome["version"])]
        )


class JudgeShadowOperator(PipelineOperator):
    """Pair the challenger's shadow scores of the last `days` days with the champion's and
    record the verdict (pass, fail, or pending below ``promotion.shadow.min_pairs``). Returns
    the verdict (``loopline.promotion.shadow.ShadowVerdict``).

    :param challenger: start_shadow's output: the challenger and its champion (templated).
    :param days: days of the prediction log, ending the day the run started (templated).
    """

    template_fields = ("challenger", "days")

    def __init__(self, *, challenger: Any, days: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.challenger, self.days = challenger, days

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.shadow import (
            AwaitingChallenger,
            judge_and_record_shadow,
            last_days,
        )

        challenger = AwaitingChallenger.model_validate(self.challenger)
        days = last_days(context["dag_run"].run_after.date(), typed(self, ShadowArguments).days)
        verdict = judge_and_record_shadow(
            self.store, self.spec, challenger, days, self.run_context(context)
        )
        bind_model_version(verdict.version)
        summary = "\n".join(
            [
                f"{self.spec.name} v{verdict.version} in shadow against champion "
                f"v{verdict.champion}, {days[-1]} .. {days[0]}: {verdict.verdict} "
                f"({verdict.pairs} pairs)",
                *(f"  {reason}" for reason in verdict.reasons),
            ]
        )
        self.log.info("%s", summary)
        context["ti"].xcom_push(key=SUMMARY_KEY, value=summary)  # the approval form's text
        return verdict.model_dump(mode="json")


class ApproveShadowPromotionOperator(ApprovePromotionOperator):
    """The train DAG's approval step (spec: promotion.require_approval), for a challenger
    whose shadow verdict passed; any other verdict needs no one (promote_challenger skips).

    :param verdict: the judge_shadow task's output (an XComArg: its task also gives the
        summary the form shows).
    """

    def __init__(
        self,
        *,
        pipeline: str,
        verdict: Any,
        approvers: tuple[str, ...] | list[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(pipeline=pipeline, judgement=verdict, approvers=approvers, **kwargs)

    def execute(self, context: Context) -> Any:
        verdict = _verdict(self.judgement)
        if verdict.verdict != "pass":
            self.log.info("shadow verdict %s: nothing to approve", verdict.verdict)
            return None
        return ApprovalOperator.execute(self, context)


class PromoteChallengerOperator(PipelineOperator):
    """Make a challenger whose shadow verdict passed champion, under the checks of
    ``loopline models promote``; its champion asset event rolls the consumers. Pending or
    fail: skipped, with the verdict's reasons.

    :param verdict: the judge_shadow task's output (templated).
    """

    template_fields = ("verdict",)
    ui_color = "#e3f2fd"

    def __init__(self, *, verdict: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.shadow import promote_shadow_winner
        from loopline.registry import RegistryError

        verdict = _verdict(self.verdict)
        bind_model_version(verdict.version)
        if verdict.verdict != "pass":
            raise AirflowSkipException(
                f"v{verdict.version} not promoted: shadow verdict {verdict.verdict}: "
                + "; ".join(verdict.reasons)
            )
        try:
            move = promote_shadow_winner(
                self.registry, self.spec, verdict.version, self.run_context(context)
            )
        except RegistryError as exc:  # the champion moved or was rolled back: a retry agrees
            raise AirflowFailException(str(exc)) from exc
        self.keep_outcome({"version": verdict.version})
        return announce_champion_move(self, context, move)

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The version promoted, and the champion alias."""
        return (
            NOTHING if outcome is None else alias_moved_lineage(self, outcome["version"], CHAMPION)
        )


class StopShadowOperator(ConsumersOperator):
    """End the shadow once its verdict is final (pass or fail); pending leaves it on, and so
    does a shadow file that names another version by now (someone shadows that one).

    :param verdict: the judge_shadow task's output (templated).
    """

    template_fields = ("verdict",)

    def __init__(self, *, verdict: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.actions import shadow_consumers
        from loopline.streaming.shadow import shadow_path, wanted_shadow

        verdict = _verdict(self.verdict)
        if verdict.verdict == "pending":
            raise AirflowSkipException(f"verdict pending: v{verdict.version} stays in shadow")
        shadowed = wanted_shadow(shadow_path(self.consumers.state / "streaming", self.spec.name))
        if shadowed is None or shadowed.version != verdict.version:
            now = f"v{shadowed.version}" if shadowed else "none"
            raise AirflowSkipException(f"v{verdict.version} is not in shadow (now: {now})")
        return finish_action(
            self, shadow_consumers(self.consumers, self.run_context(context), None)
        )

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        return NOTHING
