"""Drift audit wall time at 1M current rows against a 1M-row reference, and the reuse of work.

Candidate: the drift_audit DAG's two phases as its tasks run them, on a real S3 server: the
decision (``loopline.drift.audit.run_audit``: verdict, decision, record; no Evidently) and,
after it, the report (``loopline.drift.report.report_audit``: Evidently renders the two
5,000-row samples the record names). The current window is 10 batches of 100k demo rows, each
profiled once when it was validated (the gate's cost, measured apart); the reference is the
champion's 1M training rows (profiled on its first audit, then stored); a real Keras champion
scores the window's sample for the quality check.
Baseline, same run: Evidently's ``DataDriftPreset`` (``include_tests=True``, an explicit
``DataDefinition``, ``drift_share`` = the spec's) on the full in-memory frames.
Goals: the decision >= 30x faster with the same dataset-level verdict and the same drifted
columns, on an undrifted and a drifted window; a second decision after one more 100k-row batch
costs <= 0.2x the first; and the report's cost and size, apart.
"""

from __future__ import annotations

import statistics
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
        audits = {
            name: _audit(store, registry, spec, day, name) for name, (day, _) in windows.items()
        }
        more = generate(
            100_000, seed=3, drift=windows["drifted"][1], start=DRIFTED_DAY, batch_id="more"
        )
        _land(store, spec, more, DRIFTED_DAY, "more", batches=1)
        again = _audit(store, registry, spec, DRIFTED_DAY, "drifted-again")
        # The same audit twice more (decisions only): a median, on a shared machine.
        repeats = [
            _audit(store, registry, spec, DRIFTED_DAY, f"drifted-again-{n}", report=False)
            for n in (2, 3)
        ]
    comparisons = []
    for name in windows:
        audit = audits[name]
        evidently_seconds, theirs = _evidently(currents[name], reference, spec)
        comparisons += _against_evidently(name, audit, evidently_seconds, theirs, spec)
    first = audits["undrifted"]
    seconds = [again.decision_seconds, *(r.decision_seconds for r in repeats)]
    second = statistics.median(seconds)
    comparisons.append(
        Comparison(
            "drift_audit",
            "second decision, +100k rows",
            "first decision (builds ref.)",
            seconds,
            [first.decision_seconds],
            f"the decision after one more 100k-row batch took {second:.2f} s (median of "
            f"{', '.join(f'{s:.2f}' for s in seconds)}) vs the first's "
            f"{first.decision_seconds:.2f} s: {second / first.decision_seconds:.2f}x (goal <= "
            f"0.2x); phases, first: {_phases(first.outcome.seconds)}; second: "
            f"{_phases(again.outcome.seconds)}; profiling each 100k batch at validation took "
            f"{min(profile_seconds):.2f}-{max(profile_seconds):.2f} s",
        )
    )
    comparisons.append(
        Comparison(
            "drift_audit",
            "second decision + report",
            "first decision + report",
            [again.total_seconds],
            [first.total_seconds],
            f"with their reports (the report task, after the decision): "
            f"{again.total_seconds:.2f} s vs {first.total_seconds:.2f} s: "
            f"{again.total_seconds / first.total_seconds:.2f}x; report phases, first: "
            f"{_phases(first.report.seconds)} (Evidently imported); second: "
            f"{_phases(again.report.seconds)}",
        )
    )
    return comparisons


class _Audited:
    """One audit as the DAG runs it: the decision task, then the report task."""

    def __init__(self, outcome, decision_seconds: float, report, report_seconds: float):
        self.outcome, self.decision_seconds = outcome, decision_seconds
        self.report, self.report_seconds = report, report_seconds

    @property
    def total_seconds(self) -> float:
        return self.decision_seconds + self.report_seconds


def _against_evidently(name, audit, evidently_seconds, theirs, spec) -> list[Comparison]:
    verdict = audit.outcome.verdict
    ours = sorted(verdict.drifted_features)
    dataset_ours = verdict.drifted_share >= spec.drift.drifted_share_to_retrain
    same = ours == theirs["drifted"] and dataset_ours == theirs["dataset_drift"]
    agreement = (
        f"verdicts {'AGREE' if same else 'DIFFER'} (ours {ours or 'none'}, dataset drift "
        f"{dataset_ours}; Evidently {theirs['drifted'] or 'none'}, {theirs['dataset_drift']})"
    )
    decision = Comparison(
        "drift_audit",
        f"decision, {name} window",
        "DataDriftPreset, full frames",
        [audit.decision_seconds],
        [evidently_seconds],
        f"{name}: decision {audit.decision_seconds:.2f} s vs DataDriftPreset "
        f"{evidently_seconds:.1f} s: {evidently_seconds / audit.decision_seconds:.1f}x faster "
        f"(goal >= 30x); {agreement}; phases: {_phases(audit.outcome.seconds)}",
    )
    report = audit.report
    with_report = Comparison(
        "drift_audit",
        f"decision + report, {name}",
        "DataDriftPreset, full frames",
        [audit.total_seconds],
        [evidently_seconds],
        f"{name}: with the report task after it {audit.total_seconds:.2f} s: "
        f"{evidently_seconds / audit.total_seconds:.1f}x faster; report "
        f"{audit.report_seconds:.2f} s ({_phases(report.seconds)}), "
        f"{report.html_bytes / 2**20:.1f} MiB HTML, {report.html_gzip_bytes / 2**20:.2f} MiB "
        "stored (gzip)",
    )
    return [decision, with_report]


def _phases(seconds: dict[str, float]) -> str:
    return ", ".join(f"{phase} {spent:.2f} s" for phase, spent in seconds.items())


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


def _audit(store, registry, spec, day, run_id, report: bool = True) -> _Audited:
    from loopline.data.window import RunWindow
    from loopline.drift.audit import run_audit
    from loopline.drift.report import report_audit
    from loopline.records import RunContext

    window = RunWindow(day + timedelta(days=1), spec.drift.window_days)
    started = time.perf_counter()
    outcome = run_audit(store, registry, spec, window, RunContext(spec.name, run_id))
    decided = time.perf_counter()
    if not report:
        return _Audited(outcome, decided - started, None, 0.0)
    rendered = report_audit(store, spec, RunContext(spec.name, run_id, task_id="report"))
    return _Audited(outcome, decided - started, rendered, time.perf_counter() - decided)


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
