"""Training throughput (samples/s): the train task against a bare Keras fit, same data, same run.

Candidate: what the retraining DAG's `train` task runs (``train_and_register``): read the
run's snapshot (Parquet) from the local S3 server, adapt the preprocessing layers, fit with
early stopping held back on 10% of the rows, save `.keras` + SavedModel, evaluate on the
holdout, upload to the registry. Samples/s = rows trained on x epochs / the task's seconds.
Baseline: `model.fit` of the same model on the same rows already in memory, fed the fastest
way found here (batches sliced from whole-column tensors, no shuffling), no early-stopping
pass, nothing read or written; samples/s = rows x epochs / fit time.
Goal: throughput ratio >= 0.85. Both on the CPU here (no GPU on this machine).
"""

from __future__ import annotations

import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Comparison

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

ROWS = 1_000_000
EPOCHS = 20  # the demo spec's model.hyperparameters.epochs (early stopping off here)


def run(repeats: int = 1) -> list[Comparison]:
    warnings.filterwarnings("ignore")
    from loopline.data.window import RunWindow
    from loopline.demo.card_transactions import generate
    from loopline.records import RunContext
    from loopline.registry import ModelRegistry
    from loopline.serving.inputs import features_of
    from loopline.spec import load_spec
    from loopline.storage.formats import encode
    from loopline.storage.objects import ObjectStore
    from loopline.training.register import train_and_register
    from loopline.training.snapshot import assemble_snapshot, save_snapshot
    from loopline.training.trainer import (
        EARLY_STOPPING_SHARE,
        batches,
        build_model,
    )
    from support.servers import S3Server

    spec = load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
    training = spec.training.model_copy(update={"early_stopping_patience": EPOCHS + 1})
    spec = spec.model_copy(update={"training": training})
    now = datetime.now(UTC)
    task_times, fit_times, fitted_rows = [], [], 0
    with S3Server.start() as server:
        store = ObjectStore(server.client())
        store.ensure_bucket(spec.data.bucket)
        for part in range(4):  # four validated files of 250k rows
            day = now - timedelta(days=part + 1)
            table = generate(ROWS // 4, seed=part, start=day, batch_id=f"p{part}")
            key = f"{spec.data.validated_prefix}dt={day:%Y-%m-%d}/part-{part}.parquet"
            store.put_new(spec.data.bucket, key, encode(table, "parquet"))
        snapshot = assemble_snapshot(store, spec, RunWindow(now, spec.training.window_days))
        save_snapshot(store, spec, snapshot, RunContext(spec.name, "bench"))
        registry = ModelRegistry(store, spec.data.bucket)
        fitted_rows = snapshot.train.num_rows - int(snapshot.train.num_rows * EARLY_STOPPING_SHARE)
        for attempt in range(repeats):
            started = time.perf_counter()
            run = RunContext(spec.name, "bench", task_id=f"train-{attempt}")
            _, outcome = train_and_register(registry, spec, run, epochs=EPOCHS)
            task_times.append(time.perf_counter() - started)
            assert outcome.epochs_run == EPOCHS

            features = features_of(snapshot.train.slice(0, fitted_rows), spec.model)
            labels = snapshot.train.column(spec.model.label).to_numpy()[:fitted_rows]
            model = build_model(spec.model, features)
            data = batches(features, labels, spec.model.hyperparameters.batch_size)
            started = time.perf_counter()
            model.fit(data, epochs=EPOCHS, verbose=0)
            fit_times.append(time.perf_counter() - started)
    samples = fitted_rows * EPOCHS
    task_rate, fit_rate = samples / min(task_times), samples / min(fit_times)
    note = (
        f"{fitted_rows:,} rows x {EPOCHS} epochs on CPU: task {task_rate:,.0f} samples/s, bare "
        f"fit {fit_rate:,.0f} samples/s; throughput ratio {task_rate / fit_rate:.2f} "
        f"(goal >= 0.85)"
    )
    return [
        Comparison(
            "training",
            "train task: S3 + fit + registry",
            "bare Keras fit, in memory",
            task_times,
            fit_times,
            note,
        )
    ]
