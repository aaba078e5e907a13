"""Which way to score inside Spark: the batch job's object tasks against Spark's own Arrow paths.

Same 1M demo rows (four 250k-row Parquet files on local disk), same model, same warm
``local[2]`` session, every style writing key + score as Parquet to local disk:
- object tasks (what the batch job does): Spark distributes file names; each task reads its
  files with pyarrow in 65,536-row batches, scores, writes its own Parquet;
- ``spark.read.parquet`` + ``mapInArrow``;
- ``spark.read.parquet`` + ``mapInPandas``;
- ``spark.read.parquet`` + ``pyspark.ml.functions.predict_batch_udf`` (batch size 65,536).
The model is loaded once per Python worker in every style; each is run once to warm up, then
timed twice. Local disk, not S3, because Spark cannot read S3 here (no s3a jars): this
compares the styles, not the I/O.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import Comparison, local_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FILES, ROWS_PER_FILE, BATCH = 4, 250_000, 65_536


def run() -> list[Comparison]:
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        model_dir, data_dir = _prepare(work)
        spark = _session()
        try:
            styles = _styles(spark, str(model_dir), data_dir)
            times = {name: _time(style, work / "out") for name, style in styles.items()}
        finally:
            spark.stop()
    rows = FILES * ROWS_PER_FILE
    ours = times.pop("object tasks")
    return [
        Comparison(
            "scoring_style",
            "object tasks (the batch job)",
            name,
            ours,
            seconds,
            f"{rows / min(ours):,.0f} against {rows / min(seconds):,.0f} rows/s; throughput "
            f"ratio {min(seconds) / min(ours):.2f}",
        )
        for name, seconds in times.items()
    ]


def _prepare(work: Path) -> tuple[Path, Path]:
    import pyarrow.parquet as pq
    from loopline.demo.card_transactions import generate
    from loopline.serving.artifacts import save_artifacts
    from loopline.training.trainer import train_model

    spec = _spec()
    outcome = train_model(generate(50_000, seed=99), spec.model, spec.training, epochs=1)
    save_artifacts(outcome.model, work / "model")
    (work / "data").mkdir()
    for number in range(FILES):
        table = generate(ROWS_PER_FILE, seed=number, batch_id=f"b{number}")
        pq.write_table(table, work / "data" / f"part-{number}.parquet")
    return work / "model", work / "data"


def _spec() -> Any:
    from loopline.spec import load_spec

    return load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")


def _session() -> Any:
    from pyspark.sql import SparkSession

    os.environ.update(
        PYSPARK_PYTHON=sys.executable, PYTHONPATH=str(PROJECT_ROOT), SPARK_LOCAL_IP="127.0.0.1"
    )
    return (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.log.level", "WARN")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH))
        # Otherwise pandas/Arrow UDFs get the Parquet reader's 4,096-row batches (Spark 4.2).
        .config("spark.sql.execution.arrow.pythonUDF.columnarInput.enabled", "false")
        .getOrCreate()
    )


def _time(style: Callable[[str], None], out: Path) -> list[float]:
    seconds = []
    for attempt in range(3):
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        style(str(out))
        if attempt:  # the first run loads the model in each worker
            seconds.append(time.perf_counter() - started)
    return seconds


def score_arrow(model_dir: str, table: Any) -> Any:
    import numpy as np
    import pyarrow as pa
    from loopline.serving.inputs import as_tensors, features_of

    spec = _spec()
    scores = np.asarray(local_model(model_dir)(as_tensors(features_of(table, spec.model))))
    return pa.table({spec.data.key: table.column(spec.data.key), "score": scores.reshape(-1)})


def _styles(spark: Any, model_dir: str, data_dir: Path) -> dict[str, Callable[[str], None]]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import FloatType

    spec = _spec()
    key, names = spec.data.key, list(spec.model.features.all)
    schema = f"{key} string, score float"
    files = sorted(str(path) for path in data_dir.glob("*.parquet"))

    def object_tasks(out: str) -> None:
        def score_files(paths: Iterator[str]) -> Iterator[int]:
            import pyarrow.parquet as pq

            for path in paths:
                source = pq.ParquetFile(path, pre_buffer=True)
                columns = [key, *names]
                parts = [
                    score_arrow(model_dir, pa.Table.from_batches([batch]))
                    for batch in source.iter_batches(batch_size=BATCH, columns=columns)
                ]
                os.makedirs(out, exist_ok=True)
                pq.write_table(pa.concat_tables(parts), f"{out}/{Path(path).name}")
                yield 1

        assert sum(
            spark.sparkContext.parallelize(files, len(files)).mapPartitions(score_files).collect()
        ) == len(files)

    def map_in_arrow(out: str) -> None:
        def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield from score_arrow(model_dir, pa.Table.from_batches([batch])).to_batches()

        spark.read.parquet(str(data_dir)).mapInArrow(score, schema).write.parquet(out)

    def map_in_pandas(out: str) -> None:
        def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for frame in frames:
                yield score_arrow(model_dir, pa.Table.from_pandas(frame)).to_pandas()

        spark.read.parquet(str(data_dir)).mapInPandas(score, schema).write.parquet(out)

    def make_predict() -> Callable[..., np.ndarray]:
        import tensorflow as tf

        def predict(columns: tuple[np.ndarray, ...]) -> np.ndarray:
            inputs = {
                name: tf.constant(values) for name, values in zip(names, columns, strict=True)
            }
            return np.asarray(local_model(model_dir)(inputs)).reshape(-1)

        # predict_batch_udf counts the function's parameters to tell one input per column
        # from one tensor input: it needs a function with exactly one parameter per column.
        arguments = ", ".join(names)
        return eval(f"lambda {arguments}: predict(({arguments},))", {"predict": predict})

    def batch_udf(out: str) -> None:
        udf = predict_batch_udf(
            make_predict,
            return_type=FloatType(),
            batch_size=BATCH,
            input_tensor_shapes=[None] * len(names),  # one scalar column per model input
        )
        frame = spark.read.parquet(str(data_dir))
        frame.select(key, udf(*names).alias("score")).write.parquet(out)

    return {
        "object tasks": object_tasks,
        "read + mapInArrow": map_in_arrow,
        "read + mapInPandas": map_in_pandas,
        "read + predict_batch_udf": batch_udf,
    }
