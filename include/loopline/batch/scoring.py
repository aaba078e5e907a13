"""Score validated Parquet objects with a registered model, inside Spark tasks or anywhere.

Spark only distributes *which objects* to score; each task reads its objects from S3 with
pyarrow, scores them in large Arrow batches with the model loaded once per Python worker, and
writes its Parquet output to a staging prefix itself. No ``s3a://`` connector is involved, so
the same code runs on ``local[*]`` against a local S3 server and on any cluster (standalone,
YARN, Kubernetes, EMR, Databricks) whose workers can reach S3 and have this package.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopline.batch.connect import is_connect
from loopline.data.window import date_partition
from loopline.storage.settings import S3Settings

if TYPE_CHECKING:  # Spark and TensorFlow load only where a job runs
    from pyarrow.fs import FileSystem
    from pyspark import SparkContext
    from pyspark.core.status import SparkStageInfo
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.shell.progress import ProgressHandler

    from loopline.serving.artifacts import ServingFunction
    from loopline.spec.sections import PipelineSpec


@dataclass(frozen=True)
class ScoringJob:
    """Everything a task needs, small enough to ship to every worker."""

    pipeline: str
    bucket: str
    model_version: int
    run_id: str
    staging_prefix: str  # where tasks write; the driver commits from here
    spec_json: str  # the PipelineSpec, as JSON
    s3_json: str
    rows_per_batch: int = 65_536
    model_fingerprint: str = ""  # ModelVersion.fingerprint: the worker cache's key with the number
    # False: the job's I/O floor (bench/batch_engines.py): the same reads, staged writes and
    # commit, with no model loaded and a null score. Never set by the DAGs.
    with_model: bool = True

    def spec(self) -> PipelineSpec:
        from loopline.spec.sections import PipelineSpec

        return PipelineSpec.model_validate_json(self.spec_json)


def serving_function(job: ScoringJob) -> ServingFunction:
    """The model of `job`, downloaded (checksums verified) and compiled once per worker."""
    from loopline.registry import ModelRegistry
    from loopline.serving.cache import served_model
    from loopline.storage.objects import ObjectStore

    def registry() -> ModelRegistry:
        store = ObjectStore(S3Settings.from_json(job.s3_json).boto3_client())
        return ModelRegistry(store, job.bucket)

    return served_model(job.pipeline, job.model_version, registry, job.model_fingerprint)


def score_object(job: ScoringJob, key: str, filesystem: FileSystem) -> list[dict[str, Any]]:
    """Score one Parquet object batch by batch; write one staged file per date; return what
    was written (key, rows and bytes per date; the source object's size on its first row)."""
    spec = job.spec()
    serve = serving_function(job) if job.with_model else None
    # pre_buffer: one coalesced read per row group instead of one per column (2x here).
    opened = filesystem.open_input_file(f"{job.bucket}/{key}")
    source = pq.ParquetFile(opened, pre_buffer=True)
    keep = [spec.data.key, spec.data.timestamp, spec.model.label, *spec.model.features.all]
    check_schema(source.schema_arrow, keep, spec, f"s3://{job.bucket}/{key}")
    parts: dict[str, list[pa.Table]] = {}
    for batch in source.iter_batches(batch_size=job.rows_per_batch, columns=keep):
        table = pa.Table.from_batches([batch])
        scored = pa.table(
            {
                spec.data.key: table.column(spec.data.key),
                spec.data.timestamp: table.column(spec.data.timestamp),
                spec.model.label: table.column(spec.model.label),
                "score": _scores(serve, table, spec),
                "model_version": pa.repeat(pa.scalar(job.model_version, pa.int32()), len(table)),
                "airflow_run_id": pa.repeat(pa.scalar(job.run_id, pa.string()), len(table)),
                # The validated object the row came from: `loopline trace` follows it back
                # to the landed file and its validation.
                "source_object": pa.repeat(pa.scalar(key, pa.string()), len(table)),
            }
        )
        for day, rows in split_by_day(scored, spec.data.timestamp):
            parts.setdefault(day, []).append(rows)
    written = []
    for day, tables in sorted(parts.items()):
        name = f"{job.staging_prefix}{date_partition(day)}/part-{uuid.uuid4().hex}.parquet"
        table = pa.concat_tables(tables)
        with filesystem.open_output_stream(f"{job.bucket}/{name}") as sink:
            pq.write_table(table, sink, compression="zstd")
            size = sink.tell()
        written.append(
            {"source": key, "key": name, "dt": day, "rows": table.num_rows, "bytes": size}
        )
    if written:  # the executor's S3 traffic, for the task's cost (the object once, not per day)
        written[0]["source_bytes"] = opened.size()
    return written


def _scores(serve: ServingFunction | None, table: pa.Table, spec: PipelineSpec) -> pa.Array:
    from loopline.serving.inputs import served_scores

    if serve is None:  # the I/O floor: no model
        return pa.nulls(len(table), pa.float32())
    return pa.array(served_scores(serve, table, spec.model), pa.float32())


def split_by_day(table: pa.Table, timestamp: str) -> Iterator[tuple[str, pa.Table]]:
    """The rows of each UTC date in `table`; a batch of one date (the usual case, since
    validated objects sit in dt= folders) is passed through without filtering."""
    days = pc.cast(table.column(timestamp), pa.date32())  # 35x faster than strftime
    first, last = pc.min_max(days).values()
    if first == last:
        yield first.as_py().isoformat(), table
        return
    for day in pc.unique(days).to_pylist():
        yield day.isoformat(), table.filter(pc.equal(days, pa.scalar(day, pa.date32())))


class SchemaMismatch(ValueError):
    """A validated object does not have the columns or types the model was trained on."""


def check_schema(schema: pa.Schema, needed: list[str], spec: PipelineSpec, where: str) -> None:
    from loopline.data.reading import ARROW_TYPES

    declared = {column.name: ARROW_TYPES[column.type] for column in spec.data.columns}
    problems = []
    for name in needed:
        if name not in schema.names:
            problems.append(f"no column {name!r}")
        elif not _compatible(schema.field(name).type, declared[name]):
            problems.append(f"{name} is {schema.field(name).type}, expected {declared[name]}")
    if problems:
        raise SchemaMismatch(f"{where} cannot be scored: " + "; ".join(problems))


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if actual == expected:
        return True
    if pa.types.is_timestamp(actual) and pa.types.is_timestamp(expected):
        return True
    return (pa.types.is_string(actual) and pa.types.is_large_string(expected)) or (
        pa.types.is_large_string(actual) and pa.types.is_string(expected)
    )


def score_partition(job: ScoringJob, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
    """A Spark task's body: the object keys of its partition in, one manifest row per
    written file out, each saying which worker wrote it and whether that worker already held
    the model when the task began (a warm worker, kept from an earlier task or run)."""
    from pyspark import TaskContext

    from loopline.serving.cache import is_loaded

    warm = is_loaded(job.pipeline, job.model_version, job.model_fingerprint)
    task = TaskContext.get()
    where = {
        "worker": os.getpid(),
        "warm": warm,
        "partition": task.partitionId() if task else 0,
        "attempt": task.attemptNumber() if task else 0,
    }
    filesystem = S3Settings.from_json(job.s3_json).filesystem()
    for key in keys:
        for row in score_object(job, key, filesystem):
            yield row | where


# The manifest rows as an Arrow schema: what a Spark Connect task sends back.
MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("key", pa.string()),
        ("dt", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("source_bytes", pa.int64()),
        ("worker", pa.int64()),
        ("warm", pa.bool_()),
        ("partition", pa.int64()),
        ("attempt", pa.int64()),
    ]
)

_SQL_TYPES = {pa.string(): "string", pa.int64(): "bigint", pa.bool_(): "boolean"}
MANIFEST_DDL = ", ".join(f"{field.name} {_SQL_TYPES[field.type]}" for field in MANIFEST_SCHEMA)


def score_key_batches(
    job: ScoringJob, keys: list[str], batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """A Spark Connect task's body (``mapInArrow``): batches of indexes into `keys` in,
    manifest rows out."""
    indexes = (index for batch in batches for index in batch.column(0).to_pylist())
    rows = list(score_partition(job, (keys[index] for index in indexes)))
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=MANIFEST_SCHEMA)


@dataclass
class ScoredObjects:
    """What the Spark stage returns to the driver."""

    manifest: list[dict[str, Any]]  # one row per staged file: source, key, dt, rows
    retried_tasks: int = 0  # task attempts that failed and were run again (a lost worker...)


def score_with_spark(
    spark: SparkSession, job: ScoringJob, keys: list[str], progress_every_s: float = 10.0
) -> ScoredObjects:
    """Fan the objects out over the cluster in small tasks (up to four per core); the
    manifest rows come back.

    Spark retries a failed task (a killed Python worker, a lost executor) up to
    ``spark.task.maxFailures`` times; only the successful attempt's rows reach the manifest,
    so a retried object is never committed twice.
    """
    if not keys:
        return ScoredObjects([])
    if is_connect(spark):
        return _score_over_connect(spark, job, keys, progress_every_s)
    group = f"loopline-score-{uuid.uuid4().hex}"
    context = spark.sparkContext
    context.setJobGroup(group, f"score {len(keys)} objects of {job.pipeline}")
    tasks = min(len(keys), context.defaultParallelism * 4)  # small tasks: retries are cheap
    # A plain RDD: only keys go out and manifest rows come back, so Spark SQL has nothing to
    # do, and skipping its planning starts the first task 3 s sooner.
    scored = context.parallelize(keys, tasks).mapPartitions(lambda part: score_partition(job, part))
    done = threading.Event()
    reporter = threading.Thread(
        target=_report_progress, args=(context, group, done, progress_every_s), daemon=True
    )
    reporter.start()
    try:
        manifest = scored.collect()
    finally:
        done.set()
        reporter.join()
    return ScoredObjects(manifest, retried_tasks=_failed_attempts(context, group))


def _score_over_connect(
    spark: SparkSession, job: ScoringJob, keys: list[str], progress_every_s: float
) -> ScoredObjects:
    """The same object tasks over Spark Connect, which has no RDD API: a DataFrame of keys,
    ``mapInArrow`` over it. Retries are counted from the attempts that succeeded (Connect
    exposes no status tracker)."""
    tasks = min(len(keys), _connect_parallelism(spark) * 4)
    # Indexes into the keys in `tasks` even slices (a shuffle of a DataFrame of keys can leave
    # partitions empty, and an empty task still takes a Python worker, one without the model).
    frame = spark.range(0, len(keys), 1, numPartitions=tasks)
    scored = frame.mapInArrow(lambda batches: score_key_batches(job, keys, batches), MANIFEST_DDL)
    progress = ConnectProgress(every_s=progress_every_s, objects=len(keys))
    spark.registerProgressHandler(cast("ProgressHandler", progress))
    try:
        manifest = [_without_nulls(row) for row in scored.toArrow().to_pylist()]
    finally:
        spark.removeProgressHandler(cast("ProgressHandler", progress))
    retried = {row["partition"] for row in manifest if row["attempt"] > 0}
    return ScoredObjects(manifest, retried_tasks=len(retried))


def _connect_parallelism(spark: SparkSession) -> int:
    """The server's default parallelism, read over Connect: where unset (local masters), the
    N of ``local[N]``, and for ``local[*]`` this machine's cores (the local stack's server
    runs here)."""
    configured = spark.conf.get("spark.default.parallelism", None)
    if configured and configured.isdigit():
        return max(1, int(configured))
    master = spark.conf.get("spark.master", None) or ""
    inside = master.removeprefix("local[").split(",")[0].rstrip("]")
    return int(inside) if inside.isdigit() else (os.cpu_count() or 2)


def _without_nulls(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if value is not None}


class ConnectProgress:
    """Spark Connect's progress reports, printed to the task log at most every `every_s`."""

    def __init__(self, every_s: float, objects: int) -> None:
        self.every_s, self.objects, self.last = every_s, objects, time.monotonic()

    def __call__(self, stages: Any, inflight_tasks: int, operation_id: Any, done: bool) -> None:
        now = time.monotonic()
        if done or now - self.last < self.every_s:
            return
        self.last = now
        stages = list(stages or [])
        finished = sum(stage.num_completed_tasks for stage in stages)
        total = sum(stage.num_tasks for stage in stages)
        print(
            f"scoring {self.objects} objects: {finished}/{total} tasks done, "
            f"{inflight_tasks} running",
            flush=True,
        )


def _stages(context: SparkContext, group: str) -> list[SparkStageInfo]:
    tracker = context.statusTracker()
    stages = []
    for job_id in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job_id)
        for stage_id in info.stageIds if info else []:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                stages.append(stage)
    return stages


def _failed_attempts(context: SparkContext, group: str) -> int:
    return sum(stage.numFailedTasks for stage in _stages(context, group))


def _report_progress(
    context: SparkContext, group: str, done: threading.Event, every_s: float
) -> None:
    """Print the scoring stage's progress to the driver's log (the Airflow task log)."""
    while not done.wait(every_s):
        for stage in _stages(context, group):
            if stage.numTasks and stage.numActiveTasks + stage.numCompletedTasks:
                print(
                    f"scoring: {stage.numCompletedTasks}/{stage.numTasks} objects done, "
                    f"{stage.numActiveTasks} running, {stage.numFailedTasks} failed attempts",
                    flush=True,
                )
