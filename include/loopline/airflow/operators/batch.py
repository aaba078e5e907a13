"""Batch scoring: the Spark application submitted with Airflow's Spark provider."""

from __future__ import annotations

import sys
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from loopline.airflow.hooks import ObjectStoreHook

# The window ends where the run's data interval does; a run triggered without a logical date
# (REST with "logical_date": null, Airflow 3) has no interval: it ends when the run was due.
WINDOW_END = "{{ (dag_run.data_interval_end or dag_run.run_after).isoformat() }}"


class BatchScoreOperator(SparkSubmitOperator):
    """Submit ``loopline/batch/job.py`` to the ``spark_conn_id`` connection's master, then
    read back the run's record and put its summary on the predictions asset event.

    S3 credentials go to the driver in an environment variable, from ``aws_conn_id``;
    executors get them inside the job description Spark ships to them.
    """

    def __init__(
        self,
        *,
        spec_path: str,
        window_days: Any,
        model_version: Any,
        aws_conn_id: str = "aws_default",
        spark_conn_id: str = "spark_default",
        **kwargs: Any,
    ) -> None:
        from loopline.batch import job

        super().__init__(
            application=job.__file__,
            conn_id=spark_conn_id,
            name="loopline-batch-score-{{ dag.dag_id }}",
            application_args=[
                *("--spec", spec_path, "--run-id", "{{ run_id }}"),
                *("--window-end", WINDOW_END),
                *("--window-days", str(window_days), "--model-version", str(model_version)),
                *("--dag-id", "{{ dag.dag_id }}", "--task-id", "{{ task.task_id }}"),
                *("--try-number", "{{ ti.try_number }}"),
            ],
            conf=job.spark_conf(sys.executable),
            **kwargs,
        )
        self.spec_path, self.aws_conn_id = spec_path, aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.batch.job import submit_env
        from loopline.records import RecordStage, RecordStore
        from loopline.spec import load_spec

        hook = ObjectStoreHook(aws_conn_id=self.aws_conn_id)
        self.env_vars = {
            **(self.env_vars or {}),
            **submit_env(hook.settings.to_json(), sys.executable),
        }
        # Params render to native types (an int stays an int); spark-submit takes strings.
        self.application_args = [str(argument) for argument in self.application_args or []]
        super().execute(context)
        spec = load_spec(self.spec_path)
        records = RecordStore(hook.store, spec.data.bucket)
        summary = records.read(spec.name, RecordStage.BATCH_SCORING, context["run_id"]).payload
        if summary.get("skipped"):
            raise AirflowSkipException(summary["skipped"])
        self.log.info(
            "scored %d rows of %d objects with %s v%s: %s",
            summary["rows"],
            summary["objects"],
            spec.name,
            summary["model_version"],
            summary["rows_per_date"],
        )
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = summary
        return summary
