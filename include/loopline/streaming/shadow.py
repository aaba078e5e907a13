"""A challenger in shadow: a replica also scores a share of its live traffic with it, never
serving its scores, so that a shadow verdict (`loopline.promotion.shadow`) can compare it with
the champion on the same events before it is promoted.

The pipeline's shadow file (``<state>/<pipeline>/shadow.json``, ``{"version": N, "share": s}``,
written by ``loopline stream shadow`` or a deploy) says which challenger; each replica follows
it, loads the version (checksums verified, compiled, warmed up) and from then on hands every
scored batch or request to a thread of its own at the lowest CPU priority, after its answer
went out. The thread keeps the rows whose id falls in the share (a hash of the id, so every
replica picks the same events), scores them with the challenger and with the champion, each
call timed the same way on the same rows, and writes both to the prediction log (sources
``shadow`` and ``shadow-champion``). The queue is bounded: when the thread falls behind, calls
are dropped and counted, never waited for. A challenger that fails on a call is logged with
NaN scores for those rows (its error share), and the champion serves on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.data.prediction_log import SHADOW, SHADOW_CHAMPION
from loopline.streaming.prediction_log import Logged, PredictionLog

log = logging.getLogger(__name__)

Scorer = Callable[[pa.Table], np.ndarray]
QUEUE_CALLS = 256  # scoring calls waiting for the shadow at most
SHARE_BUCKETS = 10_000


def shadow_path(state_dir: Path, pipeline: str) -> Path:
    return state_dir / pipeline / "shadow.json"


@dataclass(frozen=True)
class ShadowTarget:
    version: int
    share: float


def wanted_shadow(path: Path) -> ShadowTarget | None:
    """The shadow the file asks for; None: none (no file, or ``{"version": null}``)."""
    try:
        wanted = json.loads(path.read_text())
        if wanted.get("version") is None:
            return None
        return ShadowTarget(int(wanted["version"]), float(wanted.get("share", 1.0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # none, or being replaced: read again next time


def in_share(ids: Sequence[str], share: float) -> list[int]:
    """The positions of the ids that fall in `share`: the same events on every replica."""
    cut = share * SHARE_BUCKETS
    return [i for i, key in enumerate(ids) if zlib.crc32(key.encode()) % SHARE_BUCKETS < cut]


@dataclass(frozen=True)
class _Offered:
    source: str
    ids: Sequence[str]
    features: Callable[[], pa.Table]


class ShadowScorer:
    """Follows the shadow file; scores what the replica offers with challenger and champion."""

    def __init__(
        self,
        path: Path,
        prediction_log: PredictionLog,
        load: Callable[[int], Scorer],
        champion: Callable[[], tuple[Scorer, int]],
        follow_seconds: float = 1.0,
    ) -> None:
        self.path, self.prediction_log = path, prediction_log
        self.load, self.champion = load, champion
        self.follow_seconds = follow_seconds  # how often the shadow file is read
        self.target: ShadowTarget | None = None
        self.scorer: Scorer | None = None
        self.failed_version: int | None = None
        self.scored = self.errors = self.dropped = 0
        self._queue: queue.Queue[_Offered] = queue.Queue(QUEUE_CALLS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the scoring path
    def offer(self, source: str, ids: Sequence[str], features: Callable[[], pa.Table]) -> None:
        """After an answer went out: cheap, never blocks (full: dropped and counted)."""
        if self.scorer is None:
            return
        try:
            self._queue.put_nowait(_Offered(source, ids, features))
        except queue.Full:
            self.dropped += len(ids)

    # ------------------------------------------------------------------ the shadow thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def summary(self) -> dict[str, Any]:
        target = self.target
        return {
            "version": target.version if target and self.scorer else None,
            "share": target.share if target else None,
            "scored": self.scored,
            "errors": self.errors,
            "dropped": self.dropped,
            "load_failed": self.failed_version,
        }

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # this thread only, as on Linux
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        followed_at = 0.0
        while not self._stop.is_set():
            if time.monotonic() - followed_at >= self.follow_seconds:
                self._follow()
                followed_at = time.monotonic()
            try:
                offered = self._queue.get(timeout=min(0.5, self.follow_seconds))
            except queue.Empty:
                continue
            self._score(offered)

    def _follow(self) -> None:
        wanted = wanted_shadow(self.path)
        if wanted == self.target or (wanted and wanted.version == self.failed_version):
            return
        if wanted is None:
            self.target = self.scorer = None
            return
        log.info("shadow: loading v%d (share %.2f)", wanted.version, wanted.share)
        try:
            scorer = self.load(wanted.version)
        except Exception:  # reported in the heartbeat; the champion serves on
            log.exception("shadow v%d did not load", wanted.version)
            self.failed_version = wanted.version
            return
        self.target, self.scorer, self.failed_version = wanted, scorer, None

    def _score(self, offered: _Offered) -> None:
        target, challenger = self.target, self.scorer
        if target is None or challenger is None:
            return
        chosen = in_share(offered.ids, target.share)
        if not chosen:
            return
        table = offered.features().take(pa.array(chosen))
        ids = [offered.ids[i] for i in chosen]
        champion, champion_version = self.champion()
        ours, ours_ms = _timed(champion, table)
        theirs, theirs_ms = _timed(challenger, table)
        if theirs is None:  # raised: every row failed
            theirs = np.full(len(ids), np.nan, np.float32)
        self.errors += int((~np.isfinite(theirs)).sum())  # and rows it scored NaN or inf
        if ours is None:  # the champion failed on rows it served a moment ago: not comparable
            return
        at, rows = time.time(), len(ids)
        pairs = [(SHADOW_CHAMPION, ours, champion_version, ours_ms),
                 (SHADOW, theirs, target.version, theirs_ms)]  # fmt: skip
        for source, scores, version, ms in pairs:
            entry = Logged(source, ids, lambda: table, scores, version, [ms] * rows, at)
            self.prediction_log.add(entry)
        self.scored += len(ids)


def _timed(scorer: Scorer, table: pa.Table) -> tuple[np.ndarray | None, float]:
    started = time.perf_counter()
    try:
        scores = np.asarray(scorer(table), dtype=np.float32).reshape(-1)
    except Exception as exc:
        log.warning("shadow scoring failed: %s", exc)
        return None, (time.perf_counter() - started) * 1000
    if scores.shape[0] != table.num_rows:
        return None, (time.perf_counter() - started) * 1000
    return scores, (time.perf_counter() - started) * 1000
