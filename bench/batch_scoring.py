"""Batch scoring throughput (rows/s) at 1M and 10M rows, against in-run baselines.

Data: the demo schema (34 columns) as Parquet objects of 250k rows on the local S3 server
(moto), spread over ten days; a champion trained on 50k rows. Every contender scores the same
rows with the same model, on the same two cores, in the same run.

Candidate: the batch job as the DAG submits it (``spark-submit --master local[2] job.py``):
JVM and Python worker start-up, model download, S3 reads, scoring, staged writes and the
per-date commit, all included. Its process tree's peak memory (RSS, sampled) is recorded.

Baselines:
- physical limit: the slower of (a) the bare model (one compiled ``tf.function``, large
  batches, rows already in memory as tensors) and (b) reading the same Parquet objects from
  the S3 server with pyarrow (all columns, threads on). Goal: candidate >= 0.5x.
- naive job: one process reads the whole window into pandas, predicts in 65,536-row batches,
  writes one file (``bench/naive_pandas_job.py``). Goal at 10M rows: >= 0.8x, with flat
  peak memory where the naive job's grows with the data.
- row-at-a-time Python UDF on Spark, warm (workers already hold the model). Goal: >= 20x.
- MLflow ``mlflow.pyfunc.spark_udf`` on the same model, warm, in its own venv
  (``bench/mlflow_peer.py``). Goal: >= 1.0x.
Linearity goal: 10x the rows in <= 11x the time.
The peers are timed warm and on fewer rows (they would take hours on 10M): rows/s is compared,
which favours them, since the candidate's rate includes its start-up.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Comparison, Measured, local_model, run_measured

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

SIZES = (1_000_000, 10_000_000)
ROWS_PER_OBJECT = 250_000
DAYS = 10
ROW_UDF_ROWS = 5_000
MLFLOW_ROWS = 200_000
BARE_BATCH = 262_144
JOB_TIMEOUT_S = 1800


@dataclass
class ScoringWorld:
    """What every batch benchmark scores: S3 settings and store, the champion's files, and
    the landed rows of each size (spec, spec file, keys)."""

    work: Path
    settings: Any
    store: Any
    model_dir: Path
    specs: dict[int, tuple[Any, Path, list[str]]]


@contextmanager
def scoring_world() -> Iterator[ScoringWorld]:
    """A local S3 server with a champion and SIZES rows landed, in a temporary folder."""
    from loopline.storage.objects import ObjectStore
    from loopline.storage.settings import S3Settings
    from support.servers import S3_ACCESS_KEY, S3_SECRET_KEY, S3Server

    with S3Server.start() as server, tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        settings = S3Settings(server.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY)
        store = ObjectStore(server.client())
        model_dir = _crown_champion(store, work)
        specs = {rows: _land(store, rows, work) for rows in SIZES}
        yield ScoringWorld(work, settings, store, model_dir, specs)


def run() -> list[Comparison]:
    warnings.filterwarnings("ignore")
    with scoring_world() as world:
        settings, specs, model_dir = world.settings, world.specs, world.model_dir
        jobs = {rows: _loopline_job(specs[rows], settings) for rows in SIZES}
        naive = {rows: _naive_job(specs[rows], settings, model_dir) for rows in SIZES}
        bare, read = (
            _bare_inference_rate(model_dir, specs),
            _raw_read_rate(world.store, specs, settings),
        )
        row_udf = _row_udf_rate(model_dir)
        mlflow = _mlflow_rate(world.store, specs[SIZES[0]], model_dir, world.work)
    return _report(jobs, naive, bare, read, row_udf, mlflow)


# ---- data and model ------------------------------------------------------------------------


def _spec(prefix: str) -> Any:
    from loopline.spec import load_spec

    spec = load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
    data = spec.data.model_copy(update={"validated_prefix": f"bench/{prefix}/validated/"})
    output = spec.batch_inference.model_copy(update={"output_prefix": f"bench/{prefix}/scored/"})
    return spec.model_copy(update={"data": data, "batch_inference": output})


def _crown_champion(store: Any, work: Path) -> Path:
    """Train on 50k rows, register, make champion; return a local copy of its files."""
    from loopline.data.window import RunWindow
    from loopline.demo.card_transactions import generate
    from loopline.registry import CHAMPION, ModelRegistry
    from loopline.storage.formats import encode
    from loopline.training.register import register_candidate
    from loopline.training.snapshot import assemble_snapshot
    from loopline.training.trainer import train_model

    spec = _spec("train")
    store.ensure_bucket(spec.data.bucket)
    day = datetime.now(UTC) - timedelta(days=1)
    key = f"{spec.data.validated_prefix}dt={day:%Y-%m-%d}/train.parquet"
    store.put_new(spec.data.bucket, key, encode(generate(50_000, seed=99, start=day), "parquet"))
    snapshot = assemble_snapshot(
        store, spec, RunWindow(datetime.now(UTC), spec.training.window_days)
    )
    outcome = train_model(snapshot.train, spec.model, spec.training, epochs=2)
    registry = ModelRegistry(store, spec.data.bucket)
    version = register_candidate(registry, spec, outcome, snapshot, {}).version
    registry.move_alias(
        spec.name, CHAMPION, version, expected=None, action="set", reason="bench", by="bench"
    )
    registry.download(spec.name, version, work / "model")
    return work / "model"


def _land(store: Any, rows: int, work: Path) -> tuple[Any, Path, list[str]]:
    """`rows` demo rows as 250k-row Parquet objects over ten days; the spec file to score them."""
    import yaml
    from loopline.demo.card_transactions import generate
    from loopline.storage.formats import encode

    spec = _spec(f"rows-{rows}")
    keys = []
    started = time.perf_counter()
    for number in range(rows // ROWS_PER_OBJECT):
        day = datetime.now(UTC) - timedelta(days=1 + number % DAYS)
        key = f"{spec.data.validated_prefix}dt={day:%Y-%m-%d}/part-{number:03d}.parquet"
        table = generate(ROWS_PER_OBJECT, seed=number, start=day, batch_id=f"b{number}")
        store.put_new(spec.data.bucket, key, encode(table, "parquet"))
        keys.append(key)
    print(f"   landed {rows:,} rows in {len(keys)} objects ({time.perf_counter() - started:.0f} s)")
    (work / f"rows-{rows}").mkdir()
    path = work / f"rows-{rows}" / f"{spec.name}.yaml"  # a spec file is named after its pipeline
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    return spec, path, keys


# ---- the candidate and the naive job, as separate processes --------------------------------


def _environment(settings: Any, spec_path: Path) -> dict[str, str]:
    from loopline.batch.job import submit_env

    return {
        **os.environ,
        **submit_env(settings.to_json(), sys.executable),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "LOOPLINE_SPEC": str(spec_path),
        "PYTHONPATH": str(PROJECT_ROOT),
    }


def _loopline_job(
    landed: tuple[Any, Path, list[str]], settings: Any, with_model: bool = True
) -> Measured:
    """The job as the DAG submits it; `with_model` False: its pass-through floor
    (``--no-model``, a run id of its own)."""
    from loopline.batch import job

    _, spec_path, keys = landed
    rows = len(keys) * ROWS_PER_OBJECT
    conf = [
        arg
        for key, value in job.spark_conf(sys.executable).items()
        for arg in ("--conf", f"{key}={value}")
    ]
    run_id, floor = (
        (f"bench__{rows}", ()) if with_model else (f"bench__{rows}__floor", ("--no-model",))
    )
    command = [
        *("spark-submit", "--master", "local[2]", *conf, job.__file__),
        *("--spec", str(spec_path), "--run-id", run_id, *floor),
        *("--window-end", window_end(), "--window-days", str(DAYS + 2)),
    ]
    measured = run_measured(command, _environment(settings, spec_path), JOB_TIMEOUT_S)
    summary = _marked(measured.output, job.RESULT_MARKER)
    assert summary["rows"] == rows, summary
    what = "loopline job" if with_model else "spark-submit floor"
    print(f"   {what}, {rows:,} rows: {measured.seconds:.1f} s, {measured.peak_mib:,.0f} MiB")
    return measured


def window_end() -> str:
    """The end of a window holding every landed day."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0).isoformat()


def _naive_job(landed: tuple[Any, Path, list[str]], settings: Any, model_dir: Path) -> Measured:
    spec, spec_path, keys = landed
    rows = len(keys) * ROWS_PER_OBJECT
    command = [
        *(sys.executable, "-m", "bench.naive_pandas_job", "--bucket", spec.data.bucket),
        *("--prefix", spec.data.validated_prefix, "--model-dir", str(model_dir)),
        *("--output-key", f"bench/naive/{rows}.parquet"),
    ]
    measured = run_measured(command, _environment(settings, spec_path), JOB_TIMEOUT_S)
    assert f"NAIVE_RESULT {rows}" in measured.output, measured.output[-2000:]
    print(f"   naive job, {rows:,} rows: {measured.seconds:.1f} s, {measured.peak_mib:,.0f} MiB")
    return measured


def _marked(output: str, marker: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith(marker)]
    if not lines:
        raise RuntimeError(f"no {marker.strip()} line in:\n{output[-3000:]}")
    return json.loads(lines[-1][len(marker) :])


# ---- the physical limit --------------------------------------------------------------------


def _bare_inference_rate(model_dir: Path, specs: dict[int, Any]) -> float:
    """Rows/s of the bare model on the first size's rows, already tensors in memory."""
    import pyarrow as pa
    from loopline.demo.card_transactions import generate
    from loopline.serving.inputs import as_tensors, features_of

    spec = specs[SIZES[0]][0]
    tables = [generate(ROWS_PER_OBJECT, seed=n) for n in range(SIZES[0] // ROWS_PER_OBJECT)]
    inputs = as_tensors(features_of(pa.concat_tables(tables), spec.model))
    serve = local_model(str(model_dir))
    batches = [
        {name: column[start : start + BARE_BATCH] for name, column in inputs.items()}
        for start in range(0, SIZES[0], BARE_BATCH)
    ]
    serve(batches[-1])  # trace both shapes before timing
    serve(batches[0])
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for batch in batches:
            serve(batch).numpy()
        best = min(best, time.perf_counter() - started)
    return SIZES[0] / best


def _raw_read_rate(store: Any, specs: dict[int, Any], settings: Any) -> float:
    """Rows/s of pyarrow reading the first size's objects, every column, from the S3 server."""
    import pyarrow.dataset as ds

    spec, _, keys = specs[SIZES[0]]
    paths = [f"{spec.data.bucket}/{key}" for key in keys]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        table = ds.dataset(paths, format="parquet", filesystem=settings.filesystem()).to_table()
        best = min(best, time.perf_counter() - started)
        assert table.num_rows == SIZES[0]
    return SIZES[0] / best


# ---- the peers -----------------------------------------------------------------------------


def _score_one_row(model_dir: str, names: list[str], *values: Any) -> float:
    """The row-at-a-time UDF body: the model is loaded once per worker, called once per row."""
    import tensorflow as tf

    row = {name: tf.constant([value]) for name, value in zip(names, values, strict=True)}
    return float(local_model(model_dir)(row).numpy().reshape(-1)[0])


def _row_udf_rate(model_dir: Path) -> float:
    """Rows/s of a plain Python UDF scoring one row per call, warm, on local[2]."""
    from loopline.demo.card_transactions import generate
    from loopline.spec import load_spec
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spec = load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
    names = list(spec.model.features.all)
    os.environ.update(PYSPARK_PYTHON=sys.executable, PYTHONPATH=str(PROJECT_ROOT))
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.log.level", "WARN")
        .config("spark.sql.execution.pythonUDF.arrow.enabled", "false")  # the classic row UDF
        .getOrCreate()
    )
    try:
        frame = spark.createDataFrame(generate(ROW_UDF_ROWS, seed=5).to_pandas()).cache()
        frame.count()
        score = F.udf(lambda *values: _score_one_row(str(model_dir), names, *values), "double")
        scored = frame.select(spec.data.key, score(*names).alias("score"))
        scored.write.format("noop").mode("overwrite").save()  # loads the model in each worker
        started = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        return ROW_UDF_ROWS / (time.perf_counter() - started)
    finally:
        spark.stop()


def _mlflow_rate(
    store: Any, landed: tuple[Any, Path, list[str]], model_dir: Path, work: Path
) -> dict[str, Any]:
    """MLflow's spark_udf on the same model and rows, warm, in its own venv."""
    from bench.mlflow_peer import ensure_venv

    spec, _, keys = landed
    data_dir = work / "mlflow-data"
    data_dir.mkdir()
    for key in keys[: -(-MLFLOW_ROWS // ROWS_PER_OBJECT)]:
        (data_dir / key.rsplit("/", 1)[-1]).write_bytes(store.get(spec.data.bucket, key))
    python = ensure_venv()
    command = [
        *(str(python), str(PROJECT_ROOT / "bench" / "mlflow_peer.py")),
        *("--model-dir", str(model_dir), "--data-dir", str(data_dir)),
        *("--work-dir", str(work / "mlflow-work"), "--rows", str(MLFLOW_ROWS)),
    ]
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON")}
    measured = run_measured(command, environment, JOB_TIMEOUT_S)
    result = _marked(measured.output, "MLFLOW_RESULT ")
    print(f"   mlflow spark_udf ({result['how']}): {result['rows_per_s']:,.0f} rows/s warm")
    return result


# ---- report --------------------------------------------------------------------------------


def _per_million(seconds: float, rows: int) -> list[float]:
    return [seconds * 1_000_000 / rows]


def _report(jobs, naive, bare: float, read: float, row_udf: float, mlflow) -> list[Comparison]:
    small, large = SIZES
    limit = min(bare, read)
    rate = {rows: rows / jobs[rows].seconds for rows in SIZES}
    naive_rate = {rows: rows / naive[rows].seconds for rows in SIZES}
    memory = ", ".join(
        f"{rows // 1_000_000}M: job {jobs[rows].peak_mib:,.0f} MiB / naive "
        f"{naive[rows].peak_mib:,.0f} MiB"
        for rows in SIZES
    )
    name, candidate = "batch_scoring", "loopline job @10M (s per 1M rows)"
    growth = jobs[large].seconds / jobs[small].seconds
    # What the job does once running: start-up (JVM, SparkContext, TensorFlow in each Python
    # worker) costs both runs the same, so the difference between them is all scoring.
    marginal = (large - small) / (jobs[large].seconds - jobs[small].seconds)
    comparisons = [
        Comparison(
            name,
            candidate,
            "physical limit",
            _per_million(jobs[large].seconds, large),
            [1_000_000 / limit],
            f"job {rate[large]:,.0f} rows/s (1M: {rate[small]:,.0f}); limit {limit:,.0f} = "
            f"min(bare model {bare:,.0f}, S3 read {read:,.0f}); throughput ratio "
            f"{rate[large] / limit:.2f} (goal >= 0.5); once started (the 9M rows between the "
            f"two runs) {marginal:,.0f} rows/s, ratio {marginal / limit:.2f}",
        ),
        Comparison(
            name,
            candidate,
            "naive pandas job @10M",
            _per_million(jobs[large].seconds, large),
            _per_million(naive[large].seconds, large),
            f"naive {naive_rate[large]:,.0f} rows/s (1M: {naive_rate[small]:,.0f}); throughput "
            f"ratio {rate[large] / naive_rate[large]:.2f} (goal >= 0.8); peak memory {memory}",
        ),
        Comparison(
            name,
            candidate,
            "row-at-a-time UDF, warm",
            _per_million(jobs[large].seconds, large),
            [1_000_000 / row_udf],
            f"row UDF {row_udf:,.0f} rows/s on {ROW_UDF_ROWS:,} rows; throughput ratio "
            f"{rate[large] / row_udf:.0f} (goal >= 20)",
        ),
        Comparison(
            name,
            "loopline job @1M vs @10M",
            "10x rows",
            [jobs[large].seconds],
            [jobs[small].seconds * 10],
            f"10x the rows took {growth:.1f}x the time (goal <= 11)",
        ),
    ]
    if mlflow is not None:
        comparisons.insert(
            3,
            Comparison(
                name,
                candidate,
                "MLflow spark_udf, warm",
                _per_million(jobs[large].seconds, large),
                [1_000_000 / mlflow["rows_per_s"]],
                f"MLflow {mlflow['mlflow_version']} ({mlflow['how']}) {mlflow['rows_per_s']:,.0f} "
                f"rows/s on {mlflow['rows']:,} rows; throughput ratio "
                f"{rate[large] / mlflow['rows_per_s']:.1f} (goal >= 1.0)",
            ),
        )
    return comparisons
