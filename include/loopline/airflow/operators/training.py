"""Operators of the retraining DAG: snapshot, train + register, judge, promote, rollback.

Each is a thin wrapper over ``loopline.training`` / ``loopline.promotion``; what passes
between them is on S3 (the run's snapshot, its records) or in the registry, so any of them
can be retried, and a retry never moves an alias twice (the library checks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.airflow.operators.base import RegistryOperator, SpecOperator


class _RegistryOperator(RegistryOperator):
    def announce_move(self, context: Context, move: Any) -> dict[str, Any]:
        """Put the champion's move on the task's asset events and in its log."""
        extra = {"version": move.version, "previous": move.previous, "action": move.action}
        self.announce(context, extra)
        self.log.info("%s champion: %s -> %s (%s)", self.spec.name, *extra.values())
        return extra


class TrainingSnapshotOperator(SpecOperator):
    """Assemble the run's training snapshot from validated data and keep it on S3. A window
    without data fails a run someone asked for, and skips a scheduled one (with the reason):
    a fresh project's weekly run has nothing to train on yet, which is not an error."""

    template_fields = ("window_days", "window_end")

    def __init__(self, *, window_days: Any = None, window_end: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_days, self.window_end = window_days, window_end

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.training.snapshot import EmptySnapshotError, assemble_snapshot, save_snapshot

        run = context["dag_run"]
        days = int(self.window_days) if self.window_days not in (None, "") else None
        try:
            snapshot = assemble_snapshot(self.store, self.spec, self.end_of_window(run), days)
        except EmptySnapshotError as exc:  # a retry will not find data that is not there
            if run.run_type == "scheduled":  # a str enum: str() of it is "DagRunType.SCHEDULED"
                raise AirflowSkipException(f"nothing to train on: {exc}") from exc
            raise AirflowFailException(str(exc)) from exc
        record = save_snapshot(self.store, self.spec, snapshot, self.run_context(context))
        self.log.info(
            "snapshot: %d objects, %d train rows, %d holdout rows, window %s .. %s",
            len(record.inputs),
            snapshot.record.train_rows,
            snapshot.record.holdout_rows,
            snapshot.record.window_start,
            snapshot.record.window_end,
        )
        return {"train_rows": snapshot.record.train_rows, "objects": len(record.inputs)}

    def end_of_window(self, run: Any) -> datetime:
        """The Param's window end (a backfill), else when the run was due: a scheduled run's
        tick, a manual one's trigger time. Not the data interval's end: Airflow infers one for
        a manual run that ends at the schedule's previous tick (up to a week ago here), and a
        run without a logical date (REST with "logical_date": null) has none."""
        if self.window_end not in (None, "", "None"):
            end = datetime.fromisoformat(str(self.window_end))
            return end if end.tzinfo else end.replace(tzinfo=UTC)
        return run.run_after or datetime.now(UTC)


class TrainModelOperator(_RegistryOperator):
    """Train the spec's model on the run's snapshot and register it as a new version."""

    template_fields = ("epochs", "reason")
    ui_color = "#fff3e0"

    def __init__(self, *, epochs: Any = None, reason: Any = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs, self.reason = epochs, reason

    def execute(self, context: Context) -> int:
        from loopline.training.progress import LogProgress
        from loopline.training.register import train_and_register

        self.log.info("retraining %s (%s)", self.spec.name, self.reason or "no reason given")
        version, outcome = train_and_register(
            self.registry,
            self.spec,
            self.run_context(context),
            epochs=int(self.epochs) if self.epochs else None,
            reason=str(self.reason or ""),
            progress=LogProgress(self.log),
        )
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


class JudgeCandidateOperator(_RegistryOperator):
    """Evaluate the candidate and the champion on the run's holdout; decide and record."""

    def __init__(self, *, version_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version_from = version_from

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.judge import judge
        from loopline.training.snapshot import load_saved_snapshot

        version = int(context["ti"].xcom_pull(task_ids=self.version_from))
        holdout = load_saved_snapshot(self.store, self.spec, context["run_id"]).holdout
        run = self.run_context(context)
        judgement = judge(self.registry, self.spec, version, holdout, run)
        self.log.info("%s", judgement.summary())
        return {**judgement.model_dump(mode="json"), "summary": judgement.summary()}


def _judgement(context: Context, task_id: str) -> Any:
    from loopline.promotion.judge import Judgement

    pulled = context["ti"].xcom_pull(task_ids=task_id)
    return Judgement.model_validate({k: v for k, v in pulled.items() if k != "summary"})


class PromoteOperator(_RegistryOperator):
    """Move the champion alias to a candidate that passed (only if the champion it beat is
    still champion), or the challenger alias to one that did not; the latter skips this task,
    so no champion asset event is emitted."""

    ui_color = "#e3f2fd"

    def __init__(self, *, judgement_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judgement_from = judgement_from

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.judge import apply_judgement

        judgement = _judgement(context, self.judgement_from)
        move = apply_judgement(self.registry, self.spec, judgement, self.run_context(context))
        if not judgement.decision.promote:
            raise AirflowSkipException(
                f"version {judgement.version} not promoted (now challenger): "
                + "; ".join(judgement.decision.reasons)
            )
        return self.announce_move(context, move)


class RollbackChampionOperator(_RegistryOperator):
    """Restore the champion before the last promotion, recorded in the alias history."""

    template_fields = ("reason",)

    def __init__(self, *, reason: Any = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.judge import roll_back_champion

        reason, run = str(self.reason or "rollback"), self.run_context(context)
        move = roll_back_champion(self.registry, self.spec, reason, run)
        return self.announce_move(context, move)


class ApprovePromotionOperator(ApprovalOperator):
    """Ask a person, in the Airflow UI, to approve a promotion the gates passed (spec:
    promotion.require_approval). A candidate the gates refused needs no one: it goes on to
    be recorded as challenger. Rejecting skips the promotion. With `approvers`
    (promotion.approvers) only those Airflow users may answer: Airflow's HITL endpoint checks
    the responder's user id against ``assigned_users``."""

    def __init__(
        self,
        *,
        pipeline: str,
        judgement_from: str,
        approvers: tuple[str, ...] | list[str] = (),
        **kwargs: Any,
    ) -> None:
        body = f"{{{{ ti.xcom_pull(task_ids={judgement_from!r})['summary'] }}}}"
        super().__init__(
            subject=f"Promote a new {pipeline} model to champion?",
            body=body,
            # HITLUser dicts: `id` is what the auth manager compares (the simple auth
            # manager's user id is the user name); `name` is what the UI shows.
            assigned_users=[{"id": user, "name": user} for user in approvers] or None,
            **kwargs,
        )
        self.judgement_from = judgement_from

    def execute(self, context: Context) -> Any:
        if not _judgement(context, self.judgement_from).decision.promote:
            self.log.info("the gates refused this candidate: nothing to approve")
            return None
        return super().execute(context)
