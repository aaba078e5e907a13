"""Operators of the retraining DAG: snapshot, train + register, judge, promote, rollback.

Each is a thin wrapper over ``loopline.training`` / ``loopline.promotion``; what passes
between them is on S3 (the run's snapshot) or in the registry, so any of them can be retried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


def _store(aws_conn_id: str) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from loopline.storage.objects import ObjectStore

    return ObjectStore(S3Hook(aws_conn_id=aws_conn_id).get_conn())


CHAMPION, CHALLENGER = "champion", "challenger"  # loopline.registry's names, without its import


def _registry(store: Any, spec: Any) -> Any:
    from loopline.registry import ModelRegistry

    return ModelRegistry(store, spec.data.bucket)


def _by(context: Context) -> str:
    return f"airflow:{context['dag'].dag_id}/{context['run_id']}"


def _done_by_this_run(registry: Any, name: str, alias: str, context: Context) -> Any:
    """The alias move an earlier try of this very run made, if any: retries must not move an
    alias twice (a second rollback would walk back one promotion too many)."""
    history = registry.history(name, alias)
    return history[-1] if history and history[-1].by == _by(context) else None


def _announce(operator: BaseOperator, context: Context, name: str, move: Any) -> dict[str, Any]:
    """Put the champion's move on the task's asset events and in its log."""
    extra = {"version": move.version, "previous": move.previous, "action": move.action}
    for outlet in operator.outlets:
        context["outlet_events"][outlet].extra = extra
    operator.log.info("%s champion: %s -> %s (%s)", name, move.previous, move.version, move.action)
    return extra


class _SpecOperator(BaseOperator):
    def __init__(self, *, spec_path: str, aws_conn_id: str = "aws_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.spec_path, self.aws_conn_id = spec_path, aws_conn_id

    def spec(self) -> Any:
        from loopline.spec import load_spec

        return load_spec(self.spec_path)

    def run_prefix(self, spec: Any, context: Context) -> str:
        from loopline.training.snapshot import run_prefix

        return run_prefix(spec, context["run_id"])


class TrainingSnapshotOperator(_SpecOperator):
    """Assemble the run's training snapshot from validated data and keep it on S3."""

    template_fields = ("window_days",)

    def __init__(self, *, window_days: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_days = window_days

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.training.snapshot import EmptySnapshotError, assemble_snapshot, save_snapshot

        spec, store = self.spec(), _store(self.aws_conn_id)
        # The window ends when the run was due: its trigger time for a manual or REST run.
        end = context["dag_run"].run_after or datetime.now(UTC)
        try:
            snapshot = assemble_snapshot(store, spec, end, int(self.window_days or 0) or None)
        except EmptySnapshotError as exc:  # a retry will not find data that is not there
            raise AirflowFailException(str(exc)) from exc
        prefix = self.run_prefix(spec, context)
        save_snapshot(store, spec, snapshot, prefix)
        record = snapshot.record
        self.log.info(
            "snapshot %s: %d objects, %d train rows, %d holdout rows, window %s .. %s",
            prefix,
            len(record.objects),
            record.train_rows,
            record.holdout_rows,
            record.window_start,
            record.window_end,
        )
        return {"prefix": prefix, "train_rows": record.train_rows, "objects": len(record.objects)}


class TrainModelOperator(_SpecOperator):
    """Train the spec's model on the run's snapshot and register it as a new version."""

    template_fields = ("epochs", "reason")
    ui_color = "#fff3e0"

    def __init__(self, *, epochs: Any = None, reason: Any = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs, self.reason = epochs, reason

    def execute(self, context: Context) -> int:
        from loopline.promotion.flow import train_and_register
        from loopline.training.progress import LogProgress

        spec, store = self.spec(), _store(self.aws_conn_id)
        self.log.info("retraining %s (%s)", spec.name, self.reason or "no reason given")
        lineage = {
            "dag_id": context["dag"].dag_id,
            "run_id": context["run_id"],
            "task_id": self.task_id,
            "try_number": str(context["ti"].try_number),
            "reason": str(self.reason or ""),
        }
        record, outcome = train_and_register(
            _registry(store, spec),
            spec,
            self.run_prefix(spec, context),
            lineage,
            epochs=int(self.epochs) if self.epochs else None,
            progress=LogProgress(self.log),
        )
        self.log.info(
            "trained on %s: %d epochs, %.0f samples/s; registered %s version %d: %s",
            outcome.device,
            outcome.epochs_run,
            outcome.samples_per_second,
            spec.name,
            record.version,
            record.metrics,
        )
        return record.version


class JudgeCandidateOperator(_SpecOperator):
    """Evaluate the candidate and the champion on the run's holdout; decide."""

    def __init__(self, *, version_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version_from = version_from

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.flow import judge
        from loopline.training.snapshot import load_saved_snapshot

        spec, store = self.spec(), _store(self.aws_conn_id)
        version = int(context["ti"].xcom_pull(task_ids=self.version_from))
        snapshot = load_saved_snapshot(store, spec, self.run_prefix(spec, context))
        judgement = judge(_registry(store, spec), spec, version, snapshot.holdout)
        self.log.info("%s", judgement.decision.summary())
        return {**judgement.to_dict(), "summary": judgement.decision.summary()}


class PromoteOperator(_SpecOperator):
    """Move the champion alias to a candidate that passed (only if the champion it beat is
    still champion), or the challenger alias to one that did not; the latter skips this task,
    so no champion asset event is emitted."""

    ui_color = "#e3f2fd"

    def __init__(self, *, judgement_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.judgement_from = judgement_from

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.promotion.flow import Judgement, apply
        from loopline.promotion.gates import Check, Decision

        spec, store = self.spec(), _store(self.aws_conn_id)
        pulled = context["ti"].xcom_pull(task_ids=self.judgement_from)
        decision = Decision(pulled["promote"], [Check(**check) for check in pulled["checks"]])
        judgement = Judgement(pulled["version"], pulled["champion"], decision)
        registry = _registry(store, spec)
        alias = CHAMPION if decision.promote else CHALLENGER
        move = _done_by_this_run(registry, spec.name, alias, context)
        if move is None:
            move = apply(registry, spec, judgement, by=_by(context))
        if not decision.promote:
            raise AirflowSkipException(
                f"version {judgement.version} not promoted (now challenger): "
                + "; ".join(decision.reasons)
            )
        return _announce(self, context, spec.name, move)


class RollbackChampionOperator(_SpecOperator):
    """Restore the champion before the last promotion, recorded in the alias history."""

    template_fields = ("reason",)

    def __init__(self, *, reason: Any = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        spec, store = self.spec(), _store(self.aws_conn_id)
        registry = _registry(store, spec)
        move = _done_by_this_run(registry, spec.name, CHAMPION, context)
        if move is None:
            move = registry.rollback(
                spec.name, reason=str(self.reason or "rollback"), by=_by(context)
            )
        return _announce(self, context, spec.name, move)


class ApprovePromotionOperator(ApprovalOperator):
    """Ask a person, in the Airflow UI, to approve a promotion the gates passed (spec:
    promotion.require_approval). A candidate the gates refused needs no one: it goes on to
    be recorded as challenger. Rejecting skips the promotion."""

    def __init__(self, *, pipeline: str, judgement_from: str, **kwargs: Any) -> None:
        super().__init__(
            subject=f"Promote a new {pipeline} model to champion?",
            body="{{ ti.xcom_pull(task_ids='" + judgement_from + "')['summary'] }}",
            **kwargs,
        )
        self.judgement_from = judgement_from

    def execute(self, context: Context) -> Any:
        judgement = context["ti"].xcom_pull(task_ids=self.judgement_from)
        if not judgement["promote"]:
            self.log.info("the gates refused this candidate: nothing to approve")
            return None
        return super().execute(context)
