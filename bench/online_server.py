"""Loopline's online endpoint as the online benchmark runs it: one process serving a model
folder (what the registry downloads) over REST and gRPC, without a Kafka consumer beside it,
so that it is measured as the peers are (one server process each).

    python bench/online_server.py --model-dir DIR --spec card_fraud.yaml --http-port P \\
        --grpc-port Q [--floor] [--no-batching]

--floor answers 0.5 for every row without calling the model (the same server, the same
protocol code: what the protocol costs); --no-batching scores each request alone
(max_batch_size 1). Prints ``READY`` once both listen; stops on SIGTERM. SIGUSR1 rolls it to
the next version as a replica's version follower does: the model loaded again from its folder,
compiled and warmed up beside the traffic, then switched to in place.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--no-batching", action="store_true")
    parser.add_argument("--version", type=int, default=1, help="the version its answers name")
    args = parser.parse_args()

    from loopline.spec import load_spec
    from loopline.spec.sections import ServeSpec
    from loopline.streaming.endpoint import Endpoint
    from loopline.streaming.replica import warm_up

    spec = load_spec(args.spec)
    serve = ServeSpec(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        max_batch_size=1 if args.no_batching else 64,
        max_queue_delay_ms=0.0 if args.no_batching else 2.0,
    )

    def load():
        if args.floor:
            return lambda table: np.full(table.num_rows, 0.5, np.float32)
        from loopline.serving.artifacts import compiled, load_model
        from loopline.serving.inputs import served_scores

        serve_fn = compiled(load_model(args.model_dir))

        def score(table):
            return served_scores(serve_fn, table, spec.model)

        warm_up(score, spec.model)
        return score

    endpoint = Endpoint(spec.name, spec.model, serve)
    version = args.version
    endpoint.switch_to(load(), version)
    endpoint.start()
    print("READY", flush=True)

    def roll() -> None:
        nonlocal version
        version += 1
        endpoint.switch_to(load(), version)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=roll).start())
    stop.wait()
    endpoint.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
