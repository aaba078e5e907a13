"""Operators of the drift audit DAG: audit, then retrain when the audit decided so.

Thin glue over ``loopline.drift``: the audit's verdict, report and decision are made and
recorded there; here the window comes from the run, and the decision becomes a run of
``<pipeline>.train`` whose reason names the verdict and links the report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from loopline.airflow.operators.base import RegistryOperator


class DriftAuditOperator(RegistryOperator):
    """Audit the window that ends when the run was due (or at the `window_end` Param)."""

    template_fields = ("window_end",)
    ui_color = "#ede7f6"

    def __init__(self, *, window_end: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.drift.audit import EmptyWindow, run_audit
        from loopline.drift.reference import NoReference

        run = self.run_context(context)
        try:
            outcome = run_audit(self.store, self.registry, self.spec, self._end(context), run)
        except (EmptyWindow, NoReference) as exc:  # nothing to compare: said, not failed
            self._record_skip(run, str(exc))
            raise AirflowSkipException(str(exc)) from exc
        verdict, decision = outcome.verdict, outcome.decision
        self.log.info("verdict: %s", verdict.summary())
        for drift in [*verdict.features, *filter(None, (verdict.label, verdict.prediction))]:
            (self.log.warning if drift.drifted else self.log.info)("  %s", drift.describe())
        for note in verdict.notes:
            self.log.info("note: %s", note)
        # The URI only, no presigned link: the report embeds raw rows of both samples, task
        # logs are kept long and read by anyone with log access, and a link cannot be revoked.
        # Whoever may see the data opens it with their own S3 credentials.
        self.log.info("report: %s", outcome.report_uri)
        log = self.log.warning if decision.retrain else self.log.info
        log("decision: %s: %s", decision.verdict, "; ".join(decision.reasons))
        return {
            "retrain": decision.retrain,
            "conf": outcome.train_conf(),
            "train_run_id": retrain_run_id(context["run_id"]),
            "report": outcome.report_uri,
        }

    def _end(self, context: Context) -> datetime:
        if self.window_end not in (None, "", "None"):
            end = datetime.fromisoformat(str(self.window_end))
            return end if end.tzinfo else end.replace(tzinfo=UTC)
        return context["dag_run"].run_after or datetime.now(UTC)

    def _record_skip(self, run: Any, why: str) -> None:
        from loopline.records import RecordStage, RecordStore

        record = run.record(RecordStage.DRIFT, "skipped", reasons=[why])
        RecordStore(self.store, self.spec.data.bucket).write(record)


def retrain_run_id(audit_run_id: str) -> str:
    """The retraining run an audit starts: one per audit run, so a retry starts no second."""
    return f"drift_audit__{audit_run_id}"[:250]


class RetrainOnDriftOperator(TriggerDagRunOperator):
    """Start `<pipeline>.train` (no logical date, like a REST trigger) with the audit's
    reason when the audit decided to retrain; skipped, with the audit's reasons, otherwise."""

    ui_color = "#fff3e0"

    def __init__(self, *, train_dag_id: str, decision_from: str, **kwargs: Any) -> None:
        super().__init__(
            trigger_dag_id=train_dag_id,
            logical_date=None,
            skip_when_already_exists=True,
            openlineage_inject_parent_info=False,
            **kwargs,
        )
        self.decision_from = decision_from

    def execute(self, context: Context) -> Any:
        decision = context["ti"].xcom_pull(task_ids=self.decision_from)
        if not decision or not decision.get("retrain"):
            raise AirflowSkipException("the audit decided not to retrain (see its log)")
        self.conf = decision["conf"]
        self.trigger_run_id = decision["train_run_id"]
        self.log.info("starting %s run %s: %s", self.trigger_dag_id, self.trigger_run_id, self.conf)
        return super().execute(context)
