"""Run every benchmark (or those named) and print ratios against their in-run baselines.

python -m bench              # all
python -m bench parse_time   # one
"""

from __future__ import annotations

import importlib
import sys

from bench.common import save

BENCHMARKS = [
    "parse_time",
    "validation_throughput",
    "validation_dag",
    "training_throughput",
    "batch_scoring",
    "batch_engines",
    "spark_scoring_styles",
    "drift_audit",
    "streaming",
    "streaming_ops",
    "online_serving",
]


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmarks {unknown}; known: {BENCHMARKS}", file=sys.stderr)
        return 2
    for name in names or BENCHMARKS:
        print(f"== {name}", flush=True)
        comparisons = importlib.import_module(f"bench.{name}").run()
        for comparison in comparisons:
            print(comparison.line(), flush=True)
        print(f"   saved {save(name, comparisons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
