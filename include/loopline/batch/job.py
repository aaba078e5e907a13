"""The batch scoring job, in either of two engines:

- spark-submit mode: ``spark-submit job.py --spec ... --run-id ...`` (``main`` below) on the
  ``spark_default`` connection's master (``local[*,4]``, ``spark://``, YARN or Kubernetes by
  changing only the connection). S3 settings come in the ``LOOPLINE_S3`` environment variable,
  never on the command line (which ends up in logs).
- Spark Connect mode (a ``spark_connect`` connection): the Airflow task itself is the driver
  and scores on a warm, long-running server (``loopline.batch.connect``).

Both run ``score_window``: the same tasks, the same per-date commit, the same record."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopline.storage.settings import S3Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from loopline.batch.scoring import ScoringJob
    from loopline.records import RunContext, StageRecord
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

RESULT_MARKER = "LOOPLINE_RESULT "  # the summary's line in the driver's output


def spark_conf(python: str) -> dict[str, str]:
    """What every submission of this job sets, whichever master runs it."""
    return {
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.ui.enabled": "false",
        "spark.log.level": "WARN",  # Spark's INFO chatter would bury the task log
        "spark.task.maxFailures": "4",  # a killed Python worker's task is retried
    }


def submit_env(s3_json: str, python: str) -> dict[str, str]:
    """Environment for spark-submit: S3 settings stay off the command line (and the logs)."""
    return {"LOOPLINE_S3": s3_json, "PYSPARK_PYTHON": python, "SPARK_LOCAL_IP": "127.0.0.1"}


def staging_prefix(spec: PipelineSpec, run_id: str) -> str:
    """Where a run's tasks write before the commit; readers never look here."""
    from loopline.storage.keys import safe_segment

    assert spec.batch_inference is not None  # the batch_score DAG is planned only with it
    return f"{spec.batch_inference.output_prefix}_staging/{safe_segment(run_id)}/"


@dataclass(frozen=True)
class ScoreRequest:
    """One run of the job: what the Airflow task asks for (the command line of spark-submit
    mode, the arguments of Connect mode)."""

    spec: str  # the spec file
    run_id: str
    window_end: str  # ISO timestamp; the window ends here
    window_days: int = 1
    model_version: str = "champion"  # a version or an alias
    spec_sha256: str | None = None  # the spec version planned; a changed file fails
    dag_id: str | None = None  # the Airflow task that asked, for the run's record
    task_id: str | None = None
    try_number: int | None = None
    with_model: bool = True  # False: the I/O floor, no model (bench/ only)


# Opens the Spark session a job runs on (given the job, so a warm Connect session can be
# picked for its model version) and closes it afterwards.
SessionOpener = Callable[["ScoringJob"], AbstractContextManager["SparkSession"]]


def main(argv: list[str] | None = None) -> int:
    """spark-submit mode: this process is the job's driver."""
    parser = argparse.ArgumentParser(prog="loopline-batch-score")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--spec-sha256", help="the spec version planned; a changed file fails")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--window-end", required=True, help="ISO timestamp; the window ends here")
    parser.add_argument("--window-days", type=int, default=1)
    parser.add_argument("--model-version", default="champion", help="a version or an alias")
    parser.add_argument("--dag-id", help="the Airflow DAG that submitted the job, for its record")
    parser.add_argument("--task-id")
    parser.add_argument("--try-number", type=int)
    parser.add_argument(
        "--no-model",
        dest="with_model",
        action="store_false",
        help="measure the job's I/O floor: read, stage and commit with a null score",
    )
    request = ScoreRequest(**vars(parser.parse_args(argv)))
    # Absent where the cluster gives S3 access itself (YARN or Kubernetes, with the Spark
    # connection's "loopline-ship-s3-credentials": false): the default credential chains apply.
    s3 = S3Settings.from_json(os.environ.get("LOOPLINE_S3") or "{}")
    summary = score_window(request, s3, submitted_session)
    print(RESULT_MARKER + json.dumps(summary), flush=True)
    return 0


@contextmanager
def submitted_session(job: ScoringJob) -> Iterator[SparkSession]:
    """The session spark-submit made for this driver (its name and master come from it)."""
    from pyspark.sql import SparkSession

    yield SparkSession.builder.getOrCreate()


def connect_opener(url: str) -> SessionOpener:
    """Connect mode: the warm session of the job's pipeline and model version on the server
    at `url` (``loopline.batch.connect``)."""
    from loopline.batch.connect import warm_session

    return lambda job: warm_session(url, job.pipeline, job.model_version, job.model_fingerprint)


def score_window(
    request: ScoreRequest, s3: S3Settings, open_spark: SessionOpener
) -> dict[str, Any]:
    """Score the validated objects of the request's window with its model version, commit
    them per date and record the run; the summary is the record's payload."""
    from loopline.batch.commit import commit_output
    from loopline.batch.connect import is_connect
    from loopline.batch.scoring import ScoringJob, score_with_spark
    from loopline.data.validated import coverage, window_keys
    from loopline.data.window import RunWindow
    from loopline.records import RunContext
    from loopline.registry import AliasNotSet, ModelRegistry
    from loopline.spec import load_spec
    from loopline.storage.objects import ObjectStore

    spec = load_spec(request.spec, expect_sha256=request.spec_sha256)
    assert spec.batch_inference is not None  # the batch_score DAG is planned only with it
    run = RunContext(
        spec.name,
        request.run_id,
        request.dag_id,
        request.task_id,
        request.try_number,
        request.spec_sha256,
    )
    store = ObjectStore(s3.boto3_client())
    registry = ModelRegistry(store, spec.data.bucket)
    try:  # an unknown version number is an error, raised
        version = registry.resolve(spec.name, request.model_version)
    except AliasNotSet:  # nothing to score with yet (a fresh project): say so, score nothing
        summary: dict[str, Any] = {"skipped": f"{spec.name}@{request.model_version} is not set yet"}
        record_run(store, spec, run, summary)
        return summary
    window = RunWindow(datetime.fromisoformat(request.window_end), request.window_days)
    keys = list(window_keys(store, spec.data, window))
    summary = {
        "pipeline": spec.name,
        "run_id": request.run_id,
        "model_version": version,
        "window": [window.first_day.isoformat(), window.end.date().isoformat()],
        "objects": len(keys),
    }
    manifest: list[dict[str, Any]] = []  # one row per staged file
    if keys:
        staging = staging_prefix(spec, request.run_id)
        # An earlier attempt of this run may have died after staging some files.
        store.delete_prefix(spec.data.bucket, staging)
        job = ScoringJob(
            pipeline=spec.name,
            bucket=spec.data.bucket,
            model_version=version,
            run_id=request.run_id,
            staging_prefix=staging,
            spec_json=spec.model_dump_json(),
            s3_json=s3.to_json(),
            rows_per_batch=spec.batch_inference.rows_per_batch,
            model_fingerprint=registry.get(spec.name, version).fingerprint,
            with_model=request.with_model,
        )
        started = time.monotonic()
        with open_spark(job) as spark:
            summary["engine"] = "spark-connect" if is_connect(spark) else "spark-submit"
            summary["spark_master"] = spark.conf.get("spark.master")
            summary["session_s"] = round(time.monotonic() - started, 2)
            scored = score_with_spark(spark, job, keys)
        manifest = scored.manifest
        summary["retried_tasks"] = scored.retried_tasks
        summary |= workers_used(manifest)
        summary["rows_per_date"] = commit_output(
            store,
            spec.data.bucket,
            spec.batch_inference.output_prefix,
            scored.manifest,
            run_id=request.run_id,
            model_version=version,
            staging_prefix=staging,
        )
    else:  # said with what the validated zone holds, as training and drift say it
        summary["rows_per_date"] = {}
        summary["empty"] = (
            f"no validated {spec.name} data dated {window.first_day} .. {window.last_day} "
            f"(window_days {window.days}); {coverage(store, spec.data).describe()}. For data "
            "with past dates, run with window_end (a backfill) or a wider window_days"
        )
    summary["rows"] = sum(summary["rows_per_date"].values())
    summary |= bytes_moved(manifest)
    record_run(store, spec, run, summary, keys)
    return summary


def workers_used(manifest: list[dict[str, Any]]) -> dict[str, int]:
    """How many Python workers scored, and how many objects went to a worker that already
    held the model (kept warm from an earlier run: no TensorFlow import, no model load)."""
    warm = {row["source"] for row in manifest if row.get("warm")}
    return {
        "python_workers": len({row["worker"] for row in manifest if "worker" in row}),
        "objects_on_warm_workers": len(warm),
    }


def bytes_moved(manifest: list[dict[str, Any]]) -> dict[str, int]:
    """The S3 bytes this job moved, in its executors (the objects scored, the files staged)
    and in this driver: the Airflow task that started it counts them in its cost, since none
    of these processes is its own."""
    from loopline.storage.objects import TRAFFIC

    executors_read = sum(row.get("source_bytes", 0) for row in manifest)
    executors_written = sum(row.get("bytes", 0) for row in manifest)
    return {
        "bytes_read": executors_read + TRAFFIC.bytes_read,
        "bytes_written": executors_written + TRAFFIC.bytes_written,
        "executor_bytes_read": executors_read,
        "executor_bytes_written": executors_written,
    }


def record_run(
    store: ObjectStore,
    spec: PipelineSpec,
    run: RunContext,
    summary: dict[str, Any],
    keys: list[str] | None = None,
) -> StageRecord:
    """The run's record (its summary as the payload), which the Airflow task reads back."""
    from loopline.data.predictions import partition_prefix
    from loopline.records import ObjectRef, RecordStage, RecordStore

    assert spec.batch_inference is not None  # the batch_score DAG is planned only with it
    bucket, output = spec.data.bucket, spec.batch_inference.output_prefix
    skipped = summary.get("skipped")
    record = run.record(
        RecordStage.BATCH_SCORING,
        "skipped" if skipped else "scored",
        reasons=[skipped] if skipped else [],
        inputs=[ObjectRef(uri=f"s3://{bucket}/{key}") for key in keys or []],
        outputs=[
            ObjectRef(uri=f"s3://{bucket}/{partition_prefix(output, day)}", rows=rows)
            for day, rows in summary.get("rows_per_date", {}).items()
        ],
        numbers={k: summary[k] for k in ("rows", "objects", "retried_tasks") if k in summary},
        payload=summary,
    )
    RecordStore(store, bucket).write(record)
    return record


if __name__ == "__main__":
    sys.exit(main())
