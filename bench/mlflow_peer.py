"""The peer most users would pick for batch scoring: MLflow's `mlflow.pyfunc.spark_udf`.

Same Keras model, same Parquet rows, stock MLflow path; it runs in its own venv
(bench/.venv-mlflow) because mlflow's pins conflict with Airflow's.

    ensure_venv()  # from the main venv: builds the MLflow venv once, returns its python
    bench/.venv-mlflow/bin/python bench/mlflow_peer.py --model-dir DIR --data-dir DIR \\
        --work-dir DIR [--rows N] [--timeout-s S]

How the model is logged (what a typical user ends up with, tried in this order):
1. `mlflow.tensorflow.log_model(model, signature=infer_signature(sample_pandas, preds))`:
   refused at log time, "All fields in the model signature's input schema must be of type
   TensorSpec" (the tensorflow flavor takes no column-based signatures).
2. MLflow's docs for multi-input Keras models: a TensorSpec signature, inferred from a dict of
   the sample's columns. With (-1, 1) arrays the pyfunc hands Keras 2-D object arrays and
   Keras fails ("Invalid dtype: object"); with the columns as they are, 1-D (-1,), it works:
   Keras takes 1-D string arrays and expands each input to the model's (None, 1).
So: `mlflow.tensorflow.log_model` of the Keras model with a 1-D TensorSpec signature, loaded
by MLflow's own Keras pyfunc wrapper, which calls `model.predict` with its default batch size
(32) on each Arrow batch Spark hands over (10,000 rows). The SavedModel export is not needed.

Timed: read Parquet, score, write key + score as Parquet, after an untimed warm-up on a few
hundred rows (Python workers started, TensorFlow imported). With --rows, the rows are
repartitioned after the limit: Spark runs everything after a limit in one partition, which
would leave a core idle. A watchdog ends the process (exit 124) after --timeout-s, so a hung
Spark job cannot stall the benchmark; the JVM exits with its Python driver.
Last stdout line: `MLFLOW_RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

VENV = Path(__file__).resolve().parent / ".venv-mlflow"
STAMP = VENV / ".loopline-installed"
REQUIREMENTS = (
    "mlflow==3.17.2",
    "tensorflow==2.21.0",  # the main venv's: same kernels, same scores
    "pyspark==4.2.0",
    "pandas<3",  # pyspark 4.2's pandas UDFs
    "pyarrow",
)
KEY = "transaction_id"
WARMUP_ROWS = 400
CHECK_ROWS = 2_000
ATOL = 1e-4


def ensure_venv() -> Path:
    """The MLflow venv's python; built once with uv (a stamp file records the requirements)."""
    python = VENV / "bin" / "python"
    wanted = "\n".join(REQUIREMENTS)
    if python.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return python
    print("creating the MLflow benchmark venv (about a minute)...", flush=True)
    started, uv = time.perf_counter(), _uv()
    subprocess.run(
        [*uv, "venv", "--quiet", "--clear", "--python", _base_python(), str(VENV)], check=True
    )
    subprocess.run(
        [*uv, "pip", "install", "--quiet", "--python", str(python), *REQUIREMENTS], check=True
    )
    STAMP.write_text(wanted)
    print(f"MLflow benchmark venv ready in {time.perf_counter() - started:.0f} s", flush=True)
    return python


def _base_python() -> str:
    """The interpreter behind this one (a venv's python is no base for another venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _uv() -> list[str]:
    """uv where the Makefile puts it (the base interpreter), else in this one, else on PATH."""
    for python in (_base_python(), sys.executable):
        probe = subprocess.run([python, "-m", "uv", "--version"], capture_output=True)
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: `python3.11 -m pip install uv` (as `make install` does)")
    return [found]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _start_watchdog(args.timeout_s)
    _set_environment()
    work = Path(args.work_dir).resolve()
    for leftover in ("mlruns", "warmup", "scores"):  # each run starts from a fresh store
        shutil.rmtree(work / leftover, ignore_errors=True)

    import mlflow

    model = _load_keras(Path(args.model_dir))
    names = [tensor.name for tensor in model.inputs]
    model_uri = _log_model(model, names, args.data_dir, work)
    spark = _spark_session()
    try:
        udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
        frame = spark.read.parquet(args.data_dir)
        warmup_seconds, _ = _score(
            frame.limit(WARMUP_ROWS).repartition(_cores(spark)), udf, names, work / "warmup"
        )
        if args.rows:
            frame = frame.limit(args.rows).repartition(_cores(spark))
        seconds, rows = _score(frame, udf, names, work / "scores")
    finally:
        spark.stop()
    _check(model, names, args.data_dir, work / "scores")
    result = {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1),
        "mlflow_version": mlflow.__version__,
        "how": "mlflow.tensorflow.log_model(keras, TensorSpec signature) + pyfunc.spark_udf",
        "warmup_seconds": round(warmup_seconds, 3),
    }
    print("MLFLOW_RESULT " + json.dumps(result), flush=True)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="holds model.keras")
    parser.add_argument("--data-dir", required=True, help="Parquet files of the demo schema")
    parser.add_argument("--work-dir", required=True, help="MLflow store and scores go here")
    parser.add_argument("--rows", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="then exit 124")
    return parser.parse_args(argv)


def _start_watchdog(seconds: float) -> None:
    """Exit hard after `seconds`: a hung Spark job blocks the main thread for good."""

    def expire() -> None:
        print(f"mlflow_peer: timed out after {seconds:.0f} s", file=sys.stderr, flush=True)
        os._exit(124)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def _set_environment() -> None:
    # Spark's Python workers inherit these from the driver (local mode).
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses file stores otherwise
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load_keras(model_dir: Path) -> Any:
    import keras

    return keras.saving.load_model(model_dir / "model.keras")


def _log_model(model: Any, names: list[str], data_dir: str, work: Path) -> str:
    """Log as MLflow documents for multi-input Keras models: TensorSpec signature (see top)."""
    import mlflow
    from mlflow.models import infer_signature

    sample = _read_rows(data_dir, names, WARMUP_ROWS)
    columns = {name: sample[name].to_numpy() for name in names}
    signature = infer_signature(columns, _reference_scores(model, sample, names))
    mlflow.set_tracking_uri((work / "mlruns").as_uri())
    mlflow.set_experiment("loopline-mlflow-peer")
    with mlflow.start_run():
        info = mlflow.tensorflow.log_model(model, name="model", signature=signature)
    return info.model_uri


def _read_rows(data_dir: str, columns: list[str], rows: int) -> Any:
    """The first `rows` rows as pandas."""
    import pyarrow.dataset as ds

    return ds.dataset(data_dir, format="parquet").head(rows, columns=columns).to_pandas()


def _rows_with_keys(data_dir: str, columns: list[str], keys: list[str]) -> Any:
    import pyarrow.dataset as ds

    dataset = ds.dataset(data_dir, format="parquet")
    return dataset.to_table(columns=columns, filter=ds.field(KEY).isin(keys)).to_pandas()


def _reference_scores(model: Any, frame: Any, names: list[str]) -> Any:
    """Keras' own scores, fed as tensors (Keras refuses 2-D numpy string arrays)."""
    import tensorflow as tf

    inputs = {name: tf.constant(frame[name].to_numpy().reshape(-1, 1)) for name in names}
    return model.predict(inputs, verbose=0)


def _spark_session() -> Any:
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName("loopline-mlflow-peer")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )


def _cores(spark: Any) -> int:
    return int(spark.sparkContext.defaultParallelism)


def _score(frame: Any, udf: Any, names: list[str], out: Path) -> tuple[float, int]:
    """Score `frame` and write key + score; (seconds, rows written)."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    started = time.perf_counter()
    scored = frame.select(F.col(KEY), udf(*[F.col(name) for name in names]).alias("score"))
    scored.write.mode("overwrite").parquet(str(out))
    seconds = time.perf_counter() - started
    return seconds, pq.ParquetDataset(str(out)).read(columns=[KEY]).num_rows


def _check(model: Any, names: list[str], data_dir: str, out: Path) -> None:
    """MLflow's scores for a sample of rows must match Keras' own (atol 1e-4)."""
    import numpy as np

    scores = _read_rows(str(out), [KEY, "score"], CHECK_ROWS)
    source = _rows_with_keys(data_dir, [KEY, *names], scores[KEY].tolist())
    rows = source.drop_duplicates(KEY, keep=False).merge(scores, on=KEY, how="inner")
    if rows.empty:
        raise SystemExit("mlflow_peer: no scored rows to check against Keras")
    expected = _reference_scores(model, rows, names).reshape(-1)
    worst = float(np.max(np.abs(rows["score"].to_numpy() - expected)))
    if worst > ATOL:
        raise SystemExit(f"mlflow_peer: MLflow scores differ from Keras' by up to {worst:.2e}")
    print(f"checked {len(rows)} rows against keras predict: max |diff| {worst:.1e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
