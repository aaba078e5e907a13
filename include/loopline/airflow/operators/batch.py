"""Batch scoring: the Spark application submitted with Airflow's Spark provider."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.airflow.hooks import ObjectStoreHook
from loopline.airflow.lineage import NOTHING, ReportsLineage, TaskLineage, model_version, of_record
from loopline.airflow.log_context import bind_model_version
from loopline.airflow.operators.arguments import typed
from loopline.airflow.operators.base import announce, pin_run_spec
from loopline.plan.batch import ScoreParams
from loopline.runtime.environment import child_environment

if TYPE_CHECKING:
    from loopline.batch.job import ScoreRequest


class BatchScoreOperator(ReportsLineage, SparkSubmitOperator):
    """Score the run's window on the ``spark_conn_id`` connection's engine, then read back
    the run's record and put its summary on the predictions asset event.

    The connection's type picks the engine: a ``spark_connect`` connection (``sc://`` host,
    token as its password) scores on that warm Spark Connect server, with this task as the
    driver; a ``spark`` connection submits ``loopline/batch/job.py`` with spark-submit to
    its master, which starts an engine for every run. A window
    without validated data fails a run someone asked for (naming the dates the data has) and
    skips a scheduled one.

    In spark-submit mode S3 credentials go to the driver in an environment variable, from
    ``aws_conn_id``; executors get them inside the job description Spark ships to them (in
    Connect mode too). spark-submit gets an allowlisted environment
    (`loopline.runtime.environment`), not the task's, which holds Airflow's secrets.

    On YARN and Kubernetes masters Airflow's hook turns that variable into ``--conf`` on the
    spark-submit command line, so the operator refuses to ship it there: give the cluster its
    own S3 access (an instance role, IRSA, or a secret that sets ``LOOPLINE_S3`` in the
    driver) and set ``"loopline-ship-s3-credentials": false`` in the Spark connection's extra
    (the connection is what names the master, so the DAGs need no change).

    :param spec_path: the pipeline's spec file; `spec_sha256` its planned version.
    :param window_days: days of validated data to score (templated).
    :param model_version: champion, challenger or a version number (templated).
    :param window_end: end of the window (templated; a backfill); empty: when the run was due.
    """

    template_fields = (*SparkSubmitOperator.template_fields, *ScoreParams.model_fields)

    def __init__(
        self,
        *,
        spec_path: str,
        spec_sha256: str | None = None,
        window_days: Any = None,
        model_version: Any = None,
        window_end: Any = None,
        aws_conn_id: str = "aws_default",
        spark_conn_id: str = "spark_default",
        **kwargs: Any,
    ) -> None:
        from loopline.batch import job

        super().__init__(
            application=job.__file__,
            conn_id=spark_conn_id,
            name="loopline-batch-score-{{ dag.dag_id }}",
            conf=job.spark_conf(sys.executable),
            **kwargs,
        )
        self.spec_path, self.spec_sha256, self.aws_conn_id = spec_path, spec_sha256, aws_conn_id
        self.window_days, self.model_version = window_days, model_version
        self.window_end = window_end

    def execute(self, context: Context) -> dict[str, Any]:  # type: ignore[override]  # XCom: the summary
        from loopline.records import RecordStage, RecordStore
        from loopline.spec.loader import load_spec_version
        from loopline.storage.objects import TRAFFIC

        hook = ObjectStoreHook(aws_conn_id=self.aws_conn_id)
        connect_url = self._connect_url()
        if not connect_url:  # refused before anything else where it would leak credentials
            self._prepare_submit(hook)
        spec, sha256 = load_spec_version(self.spec_path, expect_sha256=self.spec_sha256)
        pin_run_spec(hook.store, spec, sha256, context)
        request = self._request(context)
        if connect_url:
            self._score_over_connect(connect_url, request, hook)
        else:  # the job runs as its own application, its driver included
            self.application_args = job_arguments(request)
            super().execute(context)
        records = RecordStore(hook.store, spec.data.bucket)
        record = records.read(spec.name, RecordStage.BATCH_SCORING, context["run_id"])
        self.keep_outcome((spec.data.bucket, record))
        summary = record.payload
        # What processes other than this task's moved counts in its cost: the executors, and
        # in spark-submit mode the driver too.
        prefix = "executor_" if connect_url else ""
        TRAFFIC.moved_for_us(
            summary.get(f"{prefix}bytes_read", 0), summary.get(f"{prefix}bytes_written", 0)
        )
        if summary.get("skipped"):
            raise AirflowSkipException(summary["skipped"])
        bind_model_version(summary["model_version"])
        if not summary["rows"]:
            return self._nothing_scored(context, summary)
        self.log.info(
            "scored %d rows of %d objects with %s v%s: %s",
            summary["rows"],
            summary["objects"],
            spec.name,
            summary["model_version"],
            summary["rows_per_date"],
        )
        announce(context, self.outlets, summary)
        return summary

    def _prepare_submit(self, hook: ObjectStoreHook) -> None:
        """spark-submit mode: the S3 settings for the driver's environment, where the
        connection allows shipping them."""
        from loopline.batch.job import submit_env

        if self._connection_ships_credentials():
            self._refuse_command_line_secrets()
            self.env_vars = {
                **(self.env_vars or {}),
                **submit_env(hook.settings.to_json(), sys.executable),
            }

    def _score_over_connect(self, url: str, request: ScoreRequest, hook: ObjectStoreHook) -> None:
        """Spark Connect mode: this task is the driver, the server's warm workers score."""
        from loopline.batch.connect import endpoint_of
        from loopline.batch.job import connect_opener, score_window

        self.log.info("scoring on the Spark Connect server at %s", endpoint_of(url))
        summary = score_window(request, hook.settings, connect_opener(url))
        if summary.get("objects"):
            self.log.info(
                "Spark Connect: session ready in %.1f s; %d of %d objects scored by Python "
                "workers already holding v%s (warm, kept from an earlier run), %d worker(s)",
                summary["session_s"],
                summary["objects_on_warm_workers"],
                summary["objects"],
                summary["model_version"],
                summary["python_workers"],
            )

    def _connect_url(self) -> str | None:
        """The ``sc://`` URL when `spark_conn_id` is a Spark Connect connection, else None."""
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(self._conn_id)
        if connection.conn_type != SparkConnectHook.conn_type:
            return None
        return SparkConnectHook(conn_id=self._conn_id).get_connection_url()

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The validated objects scored, the version that scored them and the prediction
        partitions written (the job's record, which the task reads back)."""
        if outcome is None:
            return NOTHING
        bucket, record = outcome  # the spec's bucket, and the run's record
        version = record.payload.get("model_version")
        scored_by = [model_version(bucket, record.pipeline, int(version))] if version else []
        return TaskLineage.of(inputs=scored_by) + of_record(record)

    def _request(self, context: Context) -> ScoreRequest:
        """The run the job is asked for: the typed run arguments, the window resolved here."""
        from loopline.batch.job import ScoreRequest
        from loopline.data.window import RunWindow

        args = typed(self, ScoreParams)
        bind_model_version(args.model_version)  # an alias until the job resolves it
        window = RunWindow.ending(args.window_end, context["dag_run"].run_after, args.window_days)
        ti = context["ti"]
        return ScoreRequest(
            spec=self.spec_path,
            run_id=context["run_id"],
            window_end=window.end.isoformat(),
            window_days=window.days,
            model_version=args.model_version,
            spec_sha256=self.spec_sha256,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            try_number=ti.try_number,
        )

    def _nothing_scored(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """No row in the window: a manual run was asked to score something, so it fails;
        a scheduled one is skipped (no predictions event). Either way the log says which
        dates do hold data."""
        why = summary.get("empty") or f"no rows scored in {summary.get('window')}"
        if context["dag_run"].run_type == "scheduled":
            raise AirflowSkipException(why)
        raise AirflowFailException(why)

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


def job_arguments(request: ScoreRequest) -> list[str]:
    """spark-submit mode: the request as the job's command line."""
    optional = {
        "--spec-sha256": request.spec_sha256,
        "--dag-id": request.dag_id,
        "--task-id": request.task_id,
        "--try-number": request.try_number,
    }
    return [
        *("--spec", request.spec, "--run-id", request.run_id),
        *("--window-end", request.window_end, "--window-days", str(request.window_days)),
        *("--model-version", request.model_version),
        *(
            arg
            for flag, value in optional.items()
            if value is not None
            for arg in (flag, str(value))
        ),
    ]


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
