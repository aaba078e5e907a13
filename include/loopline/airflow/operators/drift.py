"""Operators of the drift audit DAG: audit, then retrain when the audit decided so, and
render the audit's report beside it.

Thin glue over ``loopline.drift``: the audit's verdict and decision (a skip too) are made and
recorded there; here the window comes from the run, and the decision becomes a run of
``<pipeline>.train`` whose reason names the verdict and links the report, which the report
task renders from the samples the audit recorded (neither the record nor retraining waits
for Evidently).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException
from pydantic import BaseModel

from loopline.airflow.lineage import NOTHING, TaskLineage, model_version, of_record
from loopline.airflow.log_context import bind_model_version
from loopline.airflow.operators.arguments import typed
from loopline.airflow.operators.base import PipelineOperator
from loopline.plan.drift import AuditParams


class RetrainRequest(BaseModel):
    """What the audit hands the retrain task: whether to retrain, and how."""

    retrain: bool
    conf: dict[str, Any]  # the train run's Params: its reason names the verdict and report
    train_run_id: str
    report: str


class DriftAuditOperator(PipelineOperator):
    """Audit the window that ends when the run was due (or at `window_end`); returns a
    ``RetrainRequest``.

    :param window_end: end of the window (templated; a backfill); empty: when the run was due.
    """

    template_fields = ("window_end",)
    ui_color = "#ede7f6"

    def __init__(self, *, window_end: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.data.window import RunWindow
        from loopline.drift.audit import EmptyWindow, run_audit
        from loopline.drift.reference import NoReference

        args = typed(self, AuditParams)
        due = context["dag_run"].run_after
        window = RunWindow.ending(args.window_end, due, self.spec.drift.window_days)
        try:
            outcome = run_audit(
                self.store, self.registry, self.spec, window, self.run_context(context)
            )
        except (EmptyWindow, NoReference) as exc:  # nothing to compare: recorded, not failed
            raise AirflowSkipException(str(exc)) from exc
        self.keep_outcome(outcome.record)
        if (champion := outcome.record.payload.get("champion")) is not None:
            bind_model_version(champion)
        self._log_outcome(outcome)
        return RetrainRequest(
            retrain=outcome.decision.retrain,
            conf=outcome.train_conf(),
            train_run_id=retrain_run_id(context["run_id"]),
            report=outcome.report_uri,
        ).model_dump()

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The window's validated objects, and the champion whose reference and scores they
        were compared with (the audit's record)."""
        if outcome is None:
            return NOTHING
        champion = outcome.payload.get("champion")
        bucket, name = self.spec.data.bucket, self.spec.name
        compared = [model_version(bucket, name, int(champion))] if champion is not None else []
        return of_record(outcome) + TaskLineage.of(inputs=compared)

    def _log_outcome(self, outcome: Any) -> None:
        verdict, decision = outcome.verdict, outcome.decision
        self.log.info("verdict: %s", verdict.summary())
        for drift in [*verdict.features, *filter(None, (verdict.label, verdict.prediction))]:
            (self.log.warning if drift.drifted else self.log.info)("  %s", drift.describe())
        for note in verdict.notes:
            self.log.info("note: %s", note)
        self.log.info("report (rendered next, by the report task): %s", outcome.report_uri)
        log = self.log.warning if decision.retrain else self.log.info
        log("decision: %s: %s", decision.verdict, "; ".join(decision.reasons))
        self.log.info("phases: %s", _phases(outcome.seconds))


class DriftReportOperator(PipelineOperator):
    """Render Evidently's report of the audit this run recorded, from the samples its record
    names, and write it (HTML and JSON) where the record says; returns its ``s3://`` URI. A
    failure fails this task, loudly, and nothing else: the decision was recorded before."""

    ui_color = "#ede7f6"

    def execute(self, context: Context) -> str:
        from loopline.drift.report import report_audit

        outcome = report_audit(self.store, self.spec, self.run_context(context))
        self.keep_outcome(outcome.record)
        # The URI only, no presigned link: the report embeds raw rows of both samples, task
        # logs are kept long and read by anyone with log access, and a link cannot be revoked.
        # Whoever may see the data opens it with their own S3 credentials.
        self.log.info(
            "report: %s (%.1f MiB of HTML, %.2f MiB stored gzip-encoded; %s)",
            outcome.uri,
            outcome.html_bytes / 2**20,
            outcome.html_gzip_bytes / 2**20,
            _phases(outcome.seconds),
        )
        return outcome.uri

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The samples the audit drew, and the report's HTML and JSON (its record)."""
        return NOTHING if outcome is None else of_record(outcome)


def _phases(seconds: dict[str, float]) -> str:
    return ", ".join(f"{phase} {spent:.2f} s" for phase, spent in seconds.items())


def retrain_run_id(audit_run_id: str) -> str:
    """The retraining run an audit starts: one per audit run, so a retry starts no second."""
    return f"drift_audit__{audit_run_id}"[:250]


class RetrainOnDriftOperator(TriggerDagRunOperator):
    """Start `<pipeline>.train` (no logical date, like a REST trigger) with the audit's
    reason when the audit decided to retrain; skipped, with the audit's reasons, otherwise.

    :param train_dag_id: the DAG to start.
    :param decision: the audit task's output, a ``RetrainRequest`` (templated).
    """

    template_fields = (*TriggerDagRunOperator.template_fields, "decision")
    ui_color = "#fff3e0"

    def __init__(self, *, train_dag_id: str, decision: Any, **kwargs: Any) -> None:
        super().__init__(
            trigger_dag_id=train_dag_id,
            logical_date=None,
            skip_when_already_exists=True,
            openlineage_inject_parent_info=False,
            **kwargs,
        )
        self.decision = decision

    def execute(self, context: Context) -> Any:
        request = RetrainRequest.model_validate(self.decision)
        if not request.retrain:
            raise AirflowSkipException("the audit decided not to retrain (see its log)")
        self.conf, self.trigger_run_id = request.conf, request.train_run_id
        self.log.info("starting %s run %s: %s", self.trigger_dag_id, self.trigger_run_id, self.conf)
        return super().execute(context)
