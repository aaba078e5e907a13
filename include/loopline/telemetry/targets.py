"""The streaming replicas Prometheus should scrape, as a file_sd targets file.

Each local replica serves /metrics on a free port and writes it in its heartbeat
(``metrics_url``); replicas come and go with deploys, rolls and scaling, so the exporter
rewrites one targets file (atomically: Prometheus re-reads it on change) from the heartbeats
that are live: a state other than ``stopped`` and fresh within the deployment's staleness.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loopline.runtime.files import write_atomically
from loopline.streaming.deployment import STALE_SECONDS
from loopline.streaming.health import heartbeat_path

_BEAT = re.compile(r"replica-(\d+)\.json")


def replica_targets(state_dir: Path, now: float | None = None) -> list[dict[str, Any]]:
    """One file_sd entry per live replica that serves metrics, sorted."""
    streaming = state_dir / "streaming"
    now = time.time() if now is None else now
    entries = []
    for pipeline_dir in sorted(p for p in streaming.glob("*") if p.is_dir()):
        for beat_file in sorted(pipeline_dir.glob("replica-*.json")):
            match = _BEAT.fullmatch(beat_file.name)
            if match is None:
                continue
            slot = int(match.group(1))
            if beat_file != heartbeat_path(streaming, pipeline_dir.name, slot):
                continue
            target = _target(beat_file, now)
            if target:
                labels = {"pipeline": pipeline_dir.name, "slot": str(slot)}
                entries.append({"targets": [target], "labels": labels})
    return entries


def _target(beat_file: Path, now: float) -> str | None:
    """host:port of a live replica's metrics, None for a stopped or silent one. A heartbeat
    that is not JSON is being replaced (the write is atomic, so only a foreign file): raised."""
    try:
        beat = json.loads(beat_file.read_text())
    except FileNotFoundError:  # retired between the listing and the read
        return None
    url = beat.get("metrics_url")
    if not url or beat.get("state") == "stopped":
        return None
    if now - float(beat.get("updated_at", 0)) > STALE_SECONDS:
        return None
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"{beat_file}: metrics_url {url!r} has no host and port")
    return f"{parts.hostname}:{parts.port}"


def write_targets(path: Path, entries: list[dict[str, Any]]) -> bool:
    """Write `entries` to `path` when they changed; True if it was written."""
    text = json.dumps(entries, indent=1, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    write_atomically(path, text.encode(), durable=False)
    return True
