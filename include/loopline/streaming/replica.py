"""Run one scoring replica: ``python -m loopline.streaming.replica --spec ... --slot N ...``.

The model version is downloaded from the registry (every checksum verified) and compiled
before the replica joins its group, so "healthy" (its heartbeat says ``running``) means ready
to score. S3 settings come in ``LOOPLINE_S3`` (JSON, as the batch job gets them), never on
the command line. SIGTERM (or SIGINT) drains: the batch in hand is produced and committed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from loopline.spec import load_spec
from loopline.spec.model import PipelineSpec
from loopline.streaming.consumer import Replica, Scorer, ScoringConsumer

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

    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One streaming scoring replica.")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--version", type=int, required=True, help="the model version to serve")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--retire-on-stop", action="store_true", help="leave the group on stop")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics here (0: a free port)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = load_spec(args.spec)
    scorer = champion_scorer(spec, args.version)
    replica = Replica(spec.name, args.slot, args.version, args.bootstrap, args.state_dir)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    consumer = ScoringConsumer(spec, replica, scorer)
    if args.metrics_port is not None:
        log.info("metrics on %s", consumer.serve_metrics(args.metrics_port))
    try:
        stats = consumer.run(stop)
    finally:
        consumer.close(retire=args.retire_on_stop)
    log.info("stopped after %d events (%d dead-lettered)", stats.events, stats.dead_lettered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
