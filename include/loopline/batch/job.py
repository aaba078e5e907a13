"""The batch scoring Spark application: ``spark-submit job.py --spec ... --run-id ...``.

Submitted by the ``<pipeline>.batch_score`` DAG through Airflow's Spark provider on the
``spark_default`` connection (``local[*,4]`` here; ``spark://``, YARN or Kubernetes by changing
only the connection). S3 settings come in the ``LOOPLINE_S3`` environment variable, never on
the command line (which ends up in logs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    summary = score_window(args)
    print(RESULT_MARKER + json.dumps(summary), flush=True)
    return 0


def score_window(args: argparse.Namespace) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    from loopline.batch.commit import commit_output
    from loopline.batch.scoring import ScoringJob, score_with_spark
    from loopline.data.validated import coverage, window_keys
    from loopline.data.window import RunWindow
    from loopline.records import RunContext
    from loopline.registry import AliasNotSet, ModelRegistry
    from loopline.spec import load_spec
    from loopline.storage.objects import ObjectStore
    from loopline.storage.settings import S3Settings

    spec = load_spec(args.spec, expect_sha256=args.spec_sha256)
    assert spec.batch_inference is not None  # the batch_score DAG is planned only with it
    run = RunContext(
        spec.name, args.run_id, args.dag_id, args.task_id, args.try_number, args.spec_sha256
    )
    # Absent where the cluster gives S3 access itself (YARN or Kubernetes, with the Spark
    # connection's "loopline-ship-s3-credentials": false): the default credential chains apply.
    s3 = S3Settings.from_json(os.environ.get("LOOPLINE_S3") or "{}")
    store = ObjectStore(s3.boto3_client())
    try:  # an unknown version number is an error, raised
        version = ModelRegistry(store, spec.data.bucket).resolve(spec.name, args.model_version)
    except AliasNotSet:  # nothing to score with yet (a fresh project): say so, score nothing
        summary: dict[str, Any] = {"skipped": f"{spec.name}@{args.model_version} is not set yet"}
        record_run(store, spec, run, summary)
        return summary
    window = RunWindow(datetime.fromisoformat(args.window_end), args.window_days)
    keys = list(window_keys(store, spec.data, window))
    summary = {
        "pipeline": spec.name,
        "run_id": args.run_id,
        "model_version": version,
        "window": [window.first_day.isoformat(), window.end.date().isoformat()],
        "objects": len(keys),
    }
    manifest: list[dict[str, Any]] = []  # one row per staged file
    if keys:
        spark = SparkSession.builder.getOrCreate()  # its name and master come from spark-submit
        staging = staging_prefix(spec, args.run_id)
        # An earlier attempt of this run may have died after staging some files.
        store.delete_prefix(spec.data.bucket, staging)
        job = ScoringJob(
            pipeline=spec.name,
            bucket=spec.data.bucket,
            model_version=version,
            run_id=args.run_id,
            staging_prefix=staging,
            spec_json=spec.model_dump_json(),
            s3_json=s3.to_json(),
            rows_per_batch=spec.batch_inference.rows_per_batch,
        )
        scored = score_with_spark(spark, job, keys)
        manifest = scored.manifest
        summary["spark_master"] = spark.sparkContext.master
        summary["retried_tasks"] = scored.retried_tasks
        summary["rows_per_date"] = commit_output(
            store,
            spec.data.bucket,
            spec.batch_inference.output_prefix,
            scored.manifest,
            run_id=args.run_id,
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


def bytes_moved(manifest: list[dict[str, Any]]) -> dict[str, int]:
    """The S3 bytes this job moved, in its executors (the objects scored, the files staged)
    and in this driver: the Airflow task that started it counts them in its cost, since none
    of these processes is its own."""
    from loopline.storage.objects import TRAFFIC

    return {
        "bytes_read": sum(row.get("source_bytes", 0) for row in manifest) + TRAFFIC.bytes_read,
        "bytes_written": sum(row.get("bytes", 0) for row in manifest) + TRAFFIC.bytes_written,
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
