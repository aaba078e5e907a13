"""Drift audit wall time at 1M current rows against a 1M-row reference, and the reuse of work.

Candidate: ``loopline.drift.audit.run_audit`` as the DAG runs it, on a real S3 server: the
current window is 10 batches of 100k demo rows, each profiled once when it was validated (the
gate's cost, measured apart); the reference is the champion's 1M training rows (profiled on
its first audit, then stored); a real Keras champion scores the window's sample for the
quality check; Evidently renders the report on 5,000-row samples.
Baseline, same run: Evidently's ``DataDriftPreset`` (``include_tests=True``, an explicit
``DataDefinition``, ``drift_share`` = the spec's) on the full in-memory frames.
Goals: >= 10x faster with the same dataset-level verdict and the same drifted columns, on an
undrifted and a drifted window; a second audit after one more 100k-row batch costs <= 0.2x the
first; and the report's size.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Comparison

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))

ROWS, BATCHES = 1_000_000, 10
UNDRIFTED_DAY = datetime(2026, 11, 20, tzinfo=UTC)
DRIFTED_DAY = datetime(2026, 11, 21, tzinfo=UTC)


def run() -> list[Comparison]:
    warnings.filterwarnings("ignore")
    from loopline.demo.card_transactions import DriftKnobs, generate
    from loopline.spec import load_spec
    from loopline.storage.objects import ObjectStore
    from support.servers import S3Server

    spec = load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
    reference = generate(ROWS, seed=1, start=UNDRIFTED_DAY - timedelta(days=30))
    with S3Server.start() as server:
        store = ObjectStore(server.client())
        store.ensure_bucket(spec.data.bucket)
        registry = _champion(store, spec, reference)
        windows = {
            "undrifted": (UNDRIFTED_DAY, DriftKnobs()),
            "drifted": (DRIFTED_DAY, DriftKnobs(mean_shift=0.3, drifted_features=6)),
        }
        profile_seconds, currents = [], {}
        for name, (day, knobs) in windows.items():
            currents[name] = generate(ROWS, seed=2, drift=knobs, start=day, batch_id=name)
            profile_seconds += _land(store, spec, currents[name], day, name)
        audits = {}
        for name, (day, _) in windows.items():
            started = time.perf_counter()
            outcome = _audit(store, registry, spec, day, name)
            audits[name] = (time.perf_counter() - started, outcome)
        more = generate(
            100_000, seed=3, drift=windows["drifted"][1], start=DRIFTED_DAY, batch_id="more"
        )
        _land(store, spec, more, DRIFTED_DAY, "more", batches=1)
        started = time.perf_counter()
        again_outcome = _audit(store, registry, spec, DRIFTED_DAY, "drifted-again")
        again = time.perf_counter() - started
    comparisons = []
    for name in windows:
        seconds, outcome = audits[name]
        evidently_seconds, theirs = _evidently(currents[name], reference, spec)
        ours = sorted(outcome.verdict.drifted_features)
        dataset_ours = outcome.verdict.drifted_share >= spec.drift.drifted_share_to_retrain
        same = ours == theirs["drifted"] and dataset_ours == theirs["dataset_drift"]
        note = (
            f"{name}: audit {seconds:.1f} s vs DataDriftPreset {evidently_seconds:.1f} s: "
            f"{evidently_seconds / seconds:.1f}x faster (goal >= 10x); verdicts "
            f"{'AGREE' if same else 'DIFFER'} (ours {ours or 'none'}, dataset drift "
            f"{dataset_ours}; Evidently {theirs['drifted'] or 'none'}, {theirs['dataset_drift']}); "
            f"report {outcome.report_html_bytes / 2**20:.1f} MiB HTML, "
            f"{outcome.report_gzip_bytes / 2**20:.2f} MiB stored (gzip)"
        )
        comparisons.append(
            Comparison(
                "drift_audit",
                f"audit, {name} window",
                "DataDriftPreset, full frames",
                [seconds],
                [evidently_seconds],
                note,
            )
        )
    first, first_outcome = audits["undrifted"]
    report_first = first_outcome.seconds["report"]
    report_again = again_outcome.seconds["report"]
    comparisons.append(
        Comparison(
            "drift_audit",
            "second audit, +100k, no report",
            "first audit, no report",
            [again - report_again],
            [first - report_first],
            f"without the report (Evidently rendering 5,000-row samples: {report_again:.1f} s "
            f"and {report_first:.1f} s) the second audit took {again - report_again:.2f} s vs "
            f"{first - report_first:.2f} s: {(again - report_again) / (first - report_first):.2f}x"
            f"; phases, first: {_phases(first_outcome)}; second: {_phases(again_outcome)}",
        )
    )
    comparisons.append(
        Comparison(
            "drift_audit",
            "second audit, +100k rows",
            "first audit (builds reference)",
            [again],
            [first],
            f"an audit after one more 100k-row batch took {again:.1f} s vs the first "
            f"{first:.1f} s: {again / first:.2f}x (goal <= 0.2x); profiling each 100k batch at "
            f"validation took {min(profile_seconds):.2f}-{max(profile_seconds):.2f} s",
        )
    )
    return comparisons


def _phases(outcome) -> str:
    return ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in outcome.seconds.items())


def _champion(store, spec, reference):
    """A real Keras champion whose training run's train table is the 1M reference rows."""
    from loopline.registry import CHAMPION, ModelRegistry
    from loopline.registry.layout import training_run_prefix
    from loopline.serving.artifacts import save_artifacts
    from loopline.storage.formats import encode
    from loopline.training.trainer import train_model

    registry = ModelRegistry(store, spec.data.bucket)
    outcome = train_model(reference.slice(0, 50_000), spec.model, spec.training, epochs=1)
    prefix = training_run_prefix(spec.name, "bench-train")
    holdout = reference.slice(ROWS - 50_000)
    for name, table in (("train", reference), ("holdout", holdout)):
        store.put(spec.data.bucket, f"{prefix}{name}.parquet", encode(table, "parquet"), "x")
    with tempfile.TemporaryDirectory() as folder:
        save_artifacts(outcome.model, folder)
        version = registry.register(
            spec.name, Path(folder), metrics={"auc": 0.9}, input_schema=[],
            lineage={"run_id": "bench-train"},
        ).version  # fmt: skip
    registry.move_alias(
        spec.name, CHAMPION, version, expected=None, action="set", reason="bench", by="bench"
    )
    return registry


def _land(store, spec, table, day, name, batches: int = BATCHES) -> list[float]:
    """Validated batches with their profiles, as the gate leaves them; the profiling times."""
    from loopline.data.profile_store import ProfileStore
    from loopline.storage.formats import encode

    profiles, size, seconds = ProfileStore(store, spec.data), table.num_rows // batches, []
    for number in range(batches):
        batch = table.slice(number * size, size)
        key = f"{spec.data.validated_prefix}dt={day:%Y-%m-%d}/{name}-{number}.parquet"
        started = time.perf_counter()
        profiles.write(key, profiles.profile(batch, key))
        seconds.append(time.perf_counter() - started)
        store.put_new(spec.data.bucket, key, encode(batch, "parquet"))
    return seconds


def _audit(store, registry, spec, day, run_id):
    from loopline.drift.audit import run_audit
    from loopline.records import RunContext

    run = RunContext(spec.name, run_id)
    return run_audit(store, registry, spec, day + timedelta(days=1), run)


def _evidently(current, reference, spec):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    from loopline.data.profile_store import profiled_columns

    numeric, categorical = profiled_columns(spec.data)
    features = spec.model.features.all
    numeric = [c for c in numeric if c in features]
    categorical = [c for c in categorical if c in features]
    columns = numeric + categorical
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    frames = [t.select(columns).to_pandas() for t in (current, reference)]
    started = time.perf_counter()
    datasets = [Dataset.from_pandas(frame, data_definition=definition) for frame in frames]
    preset = DataDriftPreset(drift_share=spec.drift.drifted_share_to_retrain)
    snapshot = Report([preset], include_tests=True).run(*datasets)
    seconds = time.perf_counter() - started
    drifted, share = [], None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        kind = str(config.get("type", ""))
        if kind.endswith("ValueDrift") and metric["value"] >= config["threshold"]:
            drifted.append(config["column"])
        if kind.endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
    return seconds, {
        "drifted": sorted(drifted),
        "dataset_drift": share is not None and share >= spec.drift.drifted_share_to_retrain,
    }
