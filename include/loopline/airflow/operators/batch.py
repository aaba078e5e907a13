"""Batch scoring: the Spark application submitted with Airflow's Spark provider."""

from __future__ import annotations

import sys
from typing import Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from loopline.airflow.hooks import ObjectStoreHook
from loopline.runtime.environment import child_environment

# The window ends where the run's data interval does; a run triggered without a logical date
# (REST with "logical_date": null, Airflow 3) has no interval: it ends when the run was due.
WINDOW_END = "{{ (dag_run.data_interval_end or dag_run.run_after).isoformat() }}"


class BatchScoreOperator(SparkSubmitOperator):
    """Submit ``loopline/batch/job.py`` to the ``spark_conn_id`` connection's master, then
    read back the run's record and put its summary on the predictions asset event.

    S3 credentials go to the driver in an environment variable, from ``aws_conn_id``;
    executors get them inside the job description Spark ships to them. spark-submit gets an
    allowlisted environment (`loopline.runtime.environment`), not the task's, which holds
    Airflow's secrets.

    On YARN and Kubernetes masters Airflow's hook turns that variable into ``--conf`` on the
    spark-submit command line, so the operator refuses to ship it there: give the cluster its
    own S3 access (an instance role, IRSA, or a secret that sets ``LOOPLINE_S3`` in the
    driver) and set ``"loopline-ship-s3-credentials": false`` in the Spark connection's extra
    (the connection is what names the master, so the DAGs need no change).
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
        if self._connection_ships_credentials():
            self._refuse_command_line_secrets()
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

    def _get_hook(self) -> SparkSubmitHook:
        hook = super()._get_hook()
        # The provider's hook, built with every argument the provider passes (whatever its
        # version), given the environment handling below.
        hook.__class__ = AllowlistedSparkSubmitHook
        return hook

    def _connection_ships_credentials(self) -> bool:
        from airflow.sdk import BaseHook

        extra = BaseHook.get_connection(self._conn_id).extra_dejson
        return str(extra.get("loopline-ship-s3-credentials", True)).lower() not in ("false", "0")

    def _refuse_command_line_secrets(self) -> None:
        # A hook of its own: the one that submits is built later, with the final env_vars.
        hook = self._get_hook()
        if hook._is_yarn or hook._is_kubernetes:
            master = hook._connection["master"]
            raise ValueError(
                f"{self.task_id}: not shipping the S3 credentials of connection "
                f"{self.aws_conn_id!r} to Spark master {master!r}: on YARN and Kubernetes "
                "Airflow's SparkSubmitHook passes env_vars as --conf on the spark-submit command "
                "line (seen by ps, the Spark UI and the driver pod spec). Give the driver and "
                "executors S3 access there instead (an instance role or IRSA, or a Kubernetes/"
                "YARN secret that sets LOOPLINE_S3 in the driver) and set "
                '"loopline-ship-s3-credentials": false in the connection\'s extra.'
            )


class AllowlistedSparkSubmitHook(SparkSubmitHook):
    """spark-submit with an allowlisted environment plus `env_vars`, where the provider's hook
    would copy the task's whole environment (Airflow's Fernet key, JWT secret, database URL)."""

    def submit(self, application: str = "", **kwargs: Any) -> Any:
        extra = {str(name): str(value) for name, value in (self._env_vars or {}).items()}
        kwargs["env"] = child_environment(extra)
        return super().submit(application, **kwargs)

    def _build_spark_submit_command(self, application: str) -> list[str]:
        command = super()._build_spark_submit_command(application)
        self._env = None  # else submit() replaces the env above with os.environ + env_vars
        return command
