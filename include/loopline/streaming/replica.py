"""Run one scoring replica: ``python -m loopline.streaming.replica --spec ... --slot N ...``.

The model version is downloaded from the registry (every checksum verified) and compiled
before the replica joins its group, so "healthy" (its heartbeat says ``running``) means ready
to score. S3 settings come in ``LOOPLINE_S3`` (JSON, as the batch job gets them), never on
the command line. SIGTERM (or SIGINT) drains: the batch in hand is produced and committed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from loopline.data.prediction_log import log_prefix
from loopline.spec import load_spec
from loopline.spec.sections import ModelSpec, PipelineSpec
from loopline.streaming.consumer import Replica, Scorer, ScoringConsumer
from loopline.streaming.cost_meter import COST_EVERY_SECONDS, CostMeter
from loopline.streaming.endpoint import Endpoint
from loopline.streaming.prediction_log import PredictionLog
from loopline.streaming.shadow import ShadowScorer, shadow_path

log = logging.getLogger(__name__)


def champion_scorer(spec: PipelineSpec, version: int) -> Scorer:
    """The registered model's compiled scores, through the serving layer."""
    from loopline.registry import ModelRegistry
    from loopline.serving.cache import served_model
    from loopline.serving.inputs import served_scores
    from loopline.storage.objects import ObjectStore
    from loopline.storage.settings import S3Settings

    settings = S3Settings.from_json(os.environ["LOOPLINE_S3"])
    registry = ModelRegistry(ObjectStore(settings.boto3_client()), spec.data.bucket)
    serve = served_model(spec.name, version, lambda: registry)

    def score(table: pa.Table) -> np.ndarray:
        return served_scores(serve, table, spec.model)

    warm_up(score, spec.model)
    return score


def warm_up(score: Scorer, model: ModelSpec) -> None:
    """Trace the compiled model for every batch size before the replica joins its group: the
    first two batch sizes each trace it (the second a generalised trace), hundreds of ms
    that would otherwise stall its first batches and, in a roll, the group's rebalance."""
    for rows in (1, 2):
        columns = {name: pa.array([0.0] * rows, pa.float32()) for name in model.features.numeric}
        columns |= {name: pa.array(["warm-up"] * rows) for name in model.features.categorical}
        score(pa.table(columns))


class VersionFollower(threading.Thread):
    """Follows the slot's version file (``{"version": N}``, written by a roll): a new version
    is downloaded, compiled and warmed up beside the one serving, then the consumer switches
    to it between two batches. No restart and no rebalance, so a roll stalls no partition
    (a restart rejoins the group twice: seconds of stall on every moved partition). A
    version that fails to load is reported in the heartbeat (``switch_failed``) and not
    tried again until asked for anew; the old version serves on."""

    def __init__(
        self,
        path: Path,
        spec: PipelineSpec,
        consumer: ScoringConsumer,
        stop: threading.Event,
        endpoint: Endpoint | None = None,
    ) -> None:
        super().__init__(name="version-follower", daemon=True)
        self.path, self.spec, self.consumer, self.stop = path, spec, consumer, stop
        self.endpoint = endpoint  # online scoring switches with the consumer
        self.failed: int | None = None

    def run(self) -> None:
        # Loading and compiling a version competes for the cores the scoring loop runs on:
        # the lowest CPU priority (this thread only: Linux schedules threads one by one).
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while not self.stop.wait(1.0):
            wanted = wanted_version(self.path)
            if wanted is None or wanted == self.consumer.model_version:
                if self.failed is not None:  # rolled back: the failure is history
                    self.failed = self.consumer.switch_failed = None
                continue
            if wanted == self.failed:
                continue
            self._load(wanted)

    def _load(self, version: int) -> None:
        from loopline.serving.cache import forget

        log.info("loading v%d beside v%d", version, self.consumer.model_version)
        try:
            scorer = champion_scorer(self.spec, version)
        except Exception as exc:  # reported in the heartbeat; the old version serves on
            log.exception("v%d did not load", version)
            self.failed = version
            self.consumer.switch_failed = {"version": version, "error": str(exc)[:500]}
            return
        previous = self.consumer.model_version
        gc.freeze()  # the new model's objects too (see ScoringConsumer.run)
        if self.endpoint is not None:
            self.endpoint.switch_to(scorer, version)
        self.consumer.switch_to(scorer, version)
        forget(self.spec.name, previous)


def wanted_version(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    try:
        return int(json.loads(path.read_text())["version"])
    except (ValueError, KeyError, json.JSONDecodeError):
        return None  # being replaced: read it again next time


def cost_meter(spec: PipelineSpec, consumer: ScoringConsumer, every: float) -> CostMeter:
    """The replica's minute-by-minute ``cost`` records, in the pipeline's record store."""
    from loopline.records import RecordStore
    from loopline.storage.objects import ObjectStore
    from loopline.storage.settings import S3Settings

    settings = S3Settings.from_json(os.environ["LOOPLINE_S3"])
    records = RecordStore(ObjectStore(settings.boto3_client()), spec.data.bucket)
    return CostMeter(
        records,
        spec.name,
        consumer.member_id,
        consumer.moved,
        lambda: consumer.model_version,
        every=every,
    )


def prediction_log(spec: PipelineSpec, slot: int) -> PredictionLog | None:
    """The replica's prediction log writer, started (None where the spec turns it off)."""
    from loopline.storage.objects import ObjectStore
    from loopline.storage.settings import S3Settings

    prefix = log_prefix(spec)
    if prefix is None:
        return None

    def store() -> ObjectStore:
        return ObjectStore(S3Settings.from_json(os.environ["LOOPLINE_S3"]).boto3_client())

    writer = PredictionLog(store, spec.data.bucket, prefix, f"slot{slot}-{os.getpid()}", spec.model)
    writer.start()
    return writer


def shadow_scorer(
    spec: PipelineSpec, state_dir: Path, consumer: ScoringConsumer, log: PredictionLog | None
) -> ShadowScorer | None:
    """The replica's shadow thread, following the pipeline's shadow file (idle without one);
    None where predictions are not logged (a shadow is compared from the log)."""
    if log is None:
        return None
    shadow = ShadowScorer(
        shadow_path(state_dir, spec.name),
        log,
        load=lambda version: champion_scorer(spec, version),
        champion=lambda: (consumer.scorer, consumer.model_version),
    )
    shadow.start()
    return shadow


def online_endpoint(
    spec: PipelineSpec,
    scorer: Scorer,
    version: int,
    host: str | None,
    predictions: PredictionLog | None = None,
) -> Endpoint | None:
    """The replica's REST and gRPC endpoint when the spec serves online (`streaming.serve`),
    listening before the replica joins its group: "running" means both are ready."""
    serve = spec.streaming.serve if spec.streaming is not None else None
    if serve is None:
        return None
    if host:
        serve = serve.model_copy(update={"host": host})
    endpoint = Endpoint(spec.name, spec.model, serve, predictions)
    endpoint.switch_to(scorer, version)
    log.info("online scoring on %s", endpoint.start())
    return endpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One streaming scoring replica.")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--version", type=int, required=True, help="the model version to serve")
    parser.add_argument(
        "--version-file", type=Path, help='{"version": N}: serve N instead, and follow it'
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--retire-on-stop", action="store_true", help="leave the group on stop")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics here (0: a free port)"
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="the metrics endpoint's address (loopback; 0.0.0.0 in a pod, behind its policy)",
    )
    parser.add_argument(
        "--serve-host", help="over streaming.serve.host (0.0.0.0 in a pod, behind its policy)"
    )
    parser.add_argument(
        "--session-timeout-ms", type=int, help="over the spec's (a property of the brokers)"
    )
    parser.add_argument(
        "--cost-every",
        type=float,
        default=COST_EVERY_SECONDS,
        help="seconds between two cost records of this replica (default: a minute)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = load_spec(args.spec)
    if args.session_timeout_ms and spec.streaming is not None:  # none: the consumer says so
        streaming = spec.streaming.model_copy(
            update={"session_timeout_ms": args.session_timeout_ms}
        )
        spec = spec.model_copy(update={"streaming": streaming})
    # A restart (its supervisor's) serves what the slot was last switched to.
    version = wanted_version(args.version_file) or args.version
    scorer = champion_scorer(spec, version)
    replica = Replica(spec.name, args.slot, version, args.bootstrap, args.state_dir)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    consumer = ScoringConsumer(spec, replica, scorer)
    if args.metrics_port is not None:
        log.info("metrics on %s", consumer.serve_metrics(args.metrics_port, args.metrics_host))
    predictions = prediction_log(spec, args.slot)
    consumer.prediction_log = predictions
    endpoint = online_endpoint(spec, scorer, version, args.serve_host, predictions)
    if endpoint is not None:
        consumer.endpoint_summary = endpoint.summary
    shadow = shadow_scorer(spec, args.state_dir, consumer, predictions)
    consumer.shadow = shadow
    if endpoint is not None:
        endpoint.online.shadow = shadow
    if args.version_file is not None:
        VersionFollower(args.version_file, spec, consumer, stop, endpoint).start()
    meter = cost_meter(spec, consumer, args.cost_every)
    meter.start()
    try:
        stats = consumer.run(stop)
    finally:
        if endpoint is not None:  # stop taking requests, answer those in hand
            endpoint.stop()
        consumer.close(retire=args.retire_on_stop)
        meter.close()
        if shadow is not None:
            shadow.close()
        if predictions is not None:  # the last predictions, written before it exits
            predictions.close()
    log.info("stopped after %d events (%d dead-lettered)", stats.events, stats.dead_lettered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
