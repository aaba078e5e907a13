"""Is a replica healthy? ``python -m loopline.streaming.health --state-dir D --pipeline P
--slot N`` exits 0 when its heartbeat says ``running`` (model loaded, partitions assigned)
and is fresh, 1 otherwise with the reason: a Kubernetes readiness and startup probe.

It runs every few seconds in every pod, so it imports only the standard library and the
light ``deployment`` module: importing ``consumer`` (numpy, pyarrow, pydantic, Kafka) made
one probe take most of a second, near the probe's default 1 s timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from loopline.streaming.deployment import STALE_SECONDS


def heartbeat_path(state_dir: Path, pipeline: str, slot: int) -> Path:
    """Where a replica writes its heartbeat (defined here, in the probe's light module, and
    used by the consumer that writes it)."""
    return state_dir / pipeline / f"replica-{slot}.json"


def check(state_dir: Path, pipeline: str, slot: int, now: float | None = None) -> str | None:
    """None when healthy, else why not."""
    path = heartbeat_path(state_dir, pipeline, slot)
    if not path.exists():
        return f"no heartbeat yet at {path}"
    beat = json.loads(path.read_text())
    age = (now or time.time()) - beat.get("updated_at", 0)
    if beat.get("state") != "running":
        return f"state {beat.get('state')!r}, not 'running'"
    if age > STALE_SECONDS:
        return f"heartbeat {age:.0f} s old (> {STALE_SECONDS:.0f} s)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 if the replica is healthy.")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--slot", type=int, required=True)
    args = parser.parse_args(argv)
    problem = check(args.state_dir, args.pipeline, args.slot)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
