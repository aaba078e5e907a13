"""Operators of the retraining DAG: snapshot, train + register, judge, approve, promote, and
the rollback DAG's rollback.

Each reads its typed arguments, calls one function of ``loopline.training`` /
``loopline.promotion`` (which decides and records), logs and returns. What passes between
them is on S3 (the run's snapshot, its records), in the registry, or an upstream task's output
handed over by the DAG (``version``, ``judgement``), so any of them can be retried, and a retry
never moves an alias twice (the library checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import BaseModel

from loopline.airflow.lineage import (
    NOTHING,
    TaskLineage,
    model_alias,
    model_version,
    of_record,
    snapshot_table,
)
from loopline.airflow.log_context import bind_model_version
from loopline.airflow.operators.arguments import typed
from loopline.airflow.operators.base import PipelineOperator, announce
from loopline.plan.rollback import RollbackParams
from loopline.plan.training import SnapshotArguments, TrainArguments
from loopline.registry.layout import CHAMPION

if TYPE_CHECKING:
    from loopline.promotion.judge import Judgement
    from loopline.registry import AliasMove

SUMMARY_KEY = "summary"  # the judgement in words, an XCom of its own for the approval form


class TrainingSnapshotOperator(PipelineOperator):
    """Assemble the run's training snapshot from validated data and keep it on S3. A window
    without data fails a run someone asked for, and skips a scheduled one (with the reason):
    a fresh project's weekly run has nothing to train on yet, which is not an error.

    :param window_days: days of validated data (templated); empty: the spec's.
    :param window_end: end of the window (templated; a backfill); empty: when the run was due.
    """

    template_fields = ("window_days", "window_end")

    def __init__(self, *, window_days: Any = None, window_end: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_days, self.window_end = window_days, window_end

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.data.window import RunWindow
        from loopline.training.snapshot import EmptySnapshotError, assemble_snapshot, save_snapshot

        args, run = typed(self, SnapshotArguments), context["dag_run"]
        days = args.window_days or self.spec.training.window_days
        window = RunWindow.ending(args.window_end, run.run_after, days)
        try:
            snapshot = assemble_snapshot(self.store, self.spec, window)
        except EmptySnapshotError as exc:  # a retry will not find data that is not there
            if run.run_type == "scheduled":
                raise AirflowSkipException(f"nothing to train on: {exc}") from exc
            raise AirflowFailException(str(exc)) from exc
        record = save_snapshot(self.store, self.spec, snapshot, self.run_context(context))
        self.keep_outcome(record)
        self.log.info(
            "snapshot: %d objects, %d train rows, %d holdout rows, window %s",
            len(record.inputs),
            snapshot.record.train_rows,
            snapshot.record.holdout_rows,
            window.describe(),
        )
        return {"train_rows": snapshot.record.train_rows, "objects": len(record.inputs)}

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The validated objects of the window, and the train and holdout tables (its
        record's inputs and outputs)."""
        return NOTHING if outcome is None else of_record(outcome)


class TrainModelOperator(PipelineOperator):
    """Train the spec's model on the run's snapshot and register it as a new version; returns
    the version number.

    :param epochs: at most this many epochs (templated); empty: the spec's.
    :param reason: why this retraining runs (templated), kept in the model's lineage.
    """

    template_fields = ("epochs", "reason")
    ui_color = "#fff3e0"

    def __init__(self, *, epochs: Any = None, reason: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs, self.reason = epochs, reason

    def execute(self, context: Context) -> int:
        from loopline.records.cost import note_gpu_seconds
        from loopline.training.progress import LogProgress
        from loopline.training.register import train_and_register

        args = typed(self, TrainArguments)
        self.log.info("retraining %s (%s)", self.spec.name, args.reason)
        version, outcome = train_and_register(
            self.registry,
            self.spec,
            self.run_context(context),
            epochs=args.epochs,
            reason=args.reason,
            progress=LogProgress(self.log),
        )
        bind_model_version(version.version)
        if outcome.device.startswith("GPU"):  # the GPU-seconds of this task's cost record
            note_gpu_seconds(outcome.seconds)
        self.log.info(
            "trained on %s: %d epochs, %.0f samples/s; registered %s version %d: %s",
            outcome.device,
            outcome.epochs_run,
            outcome.samples_per_second,
            self.spec.name,
            version.version,
            version.metrics,
        )
        return version.version

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The run's train table; at the end, the version it registered."""
        bucket, name = self.spec.data.bucket, self.spec.name
        read = [snapshot_table(bucket, name, run_id, "train")] if run_id else []
        wrote = [model_version(bucket, name, int(outcome))] if outcome is not None else []
        return TaskLineage.of(read, wrote)


class CandidateVersion(BaseModel):
    version: int


class JudgeCandidateOperator(PipelineOperator):
    """Evaluate the candidate and the champion on the run's holdout; the library decides and
    records. Returns the judgement (``loopline.promotion.judge.Judgement``).

    :param version: the candidate's version number (templated; the train task's output).
    """

    template_fields = ("version",)

    def __init__(self, *, version: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.judge import judge
        from loopline.training.snapshot import load_saved_snapshot

        version = typed(self, CandidateVersion).version
        bind_model_version(version)
        holdout = load_saved_snapshot(self.store, self.spec, context["run_id"]).holdout
        judgement = judge(self.registry, self.spec, version, holdout, self.run_context(context))
        self.log.info("%s", judgement.summary())
        context["ti"].xcom_push(key=SUMMARY_KEY, value=judgement.summary())
        return judgement.model_dump(mode="json")

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The candidate, the champion it was judged against, and the run's holdout."""
        bucket, name = self.spec.data.bucket, self.spec.name
        candidate = typed(self, CandidateVersion).version
        champion = outcome.get("champion") if outcome else None
        versions = [v for v in (candidate, champion) if v is not None]
        read = [model_version(bucket, name, v) for v in versions]
        holdout = [snapshot_table(bucket, name, run_id, "holdout")] if run_id else []
        return TaskLineage.of([*read, *holdout])


def _judgement(payload: Any) -> Judgement:
    from loopline.promotion.judge import Judgement

    return Judgement.model_validate(payload)


class PromoteOperator(PipelineOperator):
    """Move the champion alias to a candidate that passed (only if the champion it beat is
    still champion), or the challenger alias to one that did not; the latter skips this task,
    so no champion asset event is emitted.

    :param judgement: the judge task's output (templated).
    """

    template_fields = ("judgement",)
    ui_color = "#e3f2fd"

    def __init__(self, *, judgement: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judgement = judgement

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.judge import apply_judgement, target_alias

        judgement = _judgement(self.judgement)
        bind_model_version(judgement.version)
        move = apply_judgement(self.registry, self.spec, judgement, self.run_context(context))
        alias = target_alias(self.spec, judgement)
        self.keep_outcome({"version": judgement.version, "alias": alias})
        if alias != CHAMPION:  # refused, or waiting for its shadow verdict on live traffic
            raise AirflowSkipException(
                f"version {judgement.version} not promoted (now challenger): {move.reason}"
            )
        return announce_champion_move(self, context, move)

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The judged version, and the alias it went to: champion, or challenger (then this
        task is skipped)."""
        if outcome is None:
            return NOTHING
        return alias_moved_lineage(self, outcome["version"], outcome["alias"])


class RollbackChampionOperator(PipelineOperator):
    """Restore the champion before the last promotion, recorded in the alias history.

    :param reason: why (templated), kept in the alias history.
    """

    template_fields = ("reason",)

    def __init__(self, *, reason: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.judge import roll_back_champion

        reason = typed(self, RollbackParams).reason or "rollback"
        move = roll_back_champion(self.registry, self.spec, reason, self.run_context(context))
        bind_model_version(move.version)
        return announce_champion_move(self, context, move)

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The version restored (`announce_champion_move`'s summary), and the champion alias."""
        return (
            NOTHING if outcome is None else alias_moved_lineage(self, outcome["version"], CHAMPION)
        )


def alias_moved_lineage(operator: PipelineOperator, version: Any, alias: str) -> TaskLineage:
    """A version read, an alias (its log of moves) written."""
    bucket, name = operator.spec.data.bucket, operator.spec.name
    return TaskLineage.of(
        [model_version(bucket, name, int(version))], [model_alias(bucket, name, alias)]
    )


def announce_champion_move(
    operator: PipelineOperator, context: Context, move: AliasMove
) -> dict[str, Any]:
    """Put the champion's move on the task's asset events and in its log."""
    extra = {"version": move.version, "previous": move.previous, "action": move.action}
    announce(context, operator.outlets, extra)
    operator.log.info("%s champion: %s -> %s (%s)", operator.spec.name, *extra.values())
    return extra


class ApprovePromotionOperator(ApprovalOperator):
    """Ask a person, in the Airflow UI, to approve a promotion the gates passed (spec:
    promotion.require_approval). A candidate the gates refused needs no one: it goes on to
    be recorded as challenger. Rejecting skips the promotion. With `approvers`
    (promotion.approvers) only those Airflow users may answer: Airflow's HITL endpoint checks
    the responder's user id against ``assigned_users``.

    :param judgement: the judge task's output (an XComArg: its task also gives the summary
        the form shows).
    """

    template_fields = (*ApprovalOperator.template_fields, "judgement")

    def __init__(
        self,
        *,
        pipeline: str,
        judgement: Any,
        approvers: tuple[str, ...] | list[str] = (),
        **kwargs: Any,
    ) -> None:
        judge_task = judgement.operator.task_id
        body = f"{{{{ ti.xcom_pull(task_ids={judge_task!r}, key={SUMMARY_KEY!r}) }}}}"
        super().__init__(
            subject=f"Promote a new {pipeline} model to champion?",
            body=body,
            # HITLUser dicts: `id` is what the auth manager compares (the simple auth
            # manager's user id is the user name); `name` is what the UI shows.
            assigned_users=[{"id": user, "name": user} for user in approvers] or None,
            **kwargs,
        )
        self.judgement = judgement

    def execute(self, context: Context) -> Any:
        if not _judgement(self.judgement).decision.promote:
            self.log.info("the gates refused this candidate: nothing to approve")
            return None
        return super().execute(context)
