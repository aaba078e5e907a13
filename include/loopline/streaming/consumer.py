"""A streaming scorer: one replica of a pipeline's consumer group.

Each loop takes a micro-batch (up to ``streaming.max_batch_size`` events, waiting at most
``max_wait_ms``), scores every good event with one call of the model, produces one prediction
per event (event id, score, model version, event-to-prediction latency) to the output topic
and every poison event to the dead-letter topic with its reason, waits for the broker to
acknowledge them, and only then commits the batch's offsets: a replica killed at any point
re-delivers its uncommitted events to whoever takes its partitions (at least once; Seldon's v1
server lost data by auto-committing first, seldon-core#4097). With ``exactly_once``, the
predictions and the offsets commit together in one Kafka transaction instead.

Group membership follows the rollout design: cooperative-sticky assignment (a rebalance moves
only the partitions that change owner), and with ``streaming.static_membership`` a static
member id (``group_instance_id`` = ``<group>-<slot>``: a replica restarted in its slot gets its
partitions back without a rebalance, within the session timeout; off by default, see the
spec). Offsets are committed in the poll thread after each batch, never from a rebalance
callback (kafka-python 3 runs those on its IO thread, where a blocking commit raises). SIGTERM
drains: finish the batch, flush, commit, close; ``retire`` also removes a static member so its
partitions move at once (a dynamic member leaves the group when it closes).

The replica's state is a heartbeat file (JSON, replaced atomically every few seconds) that the
operators read: counts, throughput, latency percentiles, batch sizes, lag, model version. The
same numbers are Prometheus metrics (``loopline.streaming.metrics``) when the replica serves
them.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event as StopFlag
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from loopline.runtime.files import write_atomically
from loopline.spec.sections import PipelineSpec
from loopline.streaming.cost_meter import Moved
from loopline.streaming.crashes import CrashGuard
from loopline.streaming.dead_letters import kept_value, preview
from loopline.streaming.events import Event, Poison, features_table, parse_event, probe_event
from loopline.streaming.health import heartbeat_path
from loopline.streaming.kafka_settings import client_settings
from loopline.streaming.metrics import ReplicaMetrics
from loopline.streaming.prediction_log import Logged, PredictionLog
from loopline.streaming.shadow import ShadowScorer

if TYPE_CHECKING:  # kafka-python ships no types: these document, mypy reads them as Any
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.producer.future import FutureRecordMetadata

log = logging.getLogger(__name__)

Scorer = Callable[[pa.Table], np.ndarray]
LATENCY_WINDOW = 5000  # events the latency percentiles are taken over
REASON_HEADER = "loopline-reason"


class ScorerBroken(RuntimeError):
    """The model fails on every row, known-good ones too: not the events' fault."""


@dataclass(frozen=True)
class Scored:
    record: Any  # the Kafka record
    event: Event
    score: float


Rejected = tuple[Any, Poison]  # a Kafka record and why it goes to the dead-letter topic


@dataclass(frozen=True)
class Replica:
    """Where and as what one replica runs."""

    pipeline: str
    slot: int  # 0..replicas-1: its static member id and heartbeat file
    model_version: int
    bootstrap: str
    state_dir: Path  # heartbeats under <state_dir>/<pipeline>/
    heartbeat_seconds: float = 2.0

    @property
    def heartbeat_path(self) -> Path:
        return heartbeat_path(self.state_dir, self.pipeline, self.slot)


@dataclass
class Stats:
    """What a replica has done, for its heartbeat."""

    started_at: float = field(default_factory=time.time)
    events: int = 0
    predictions: int = 0
    dead_lettered: int = 0
    batches: int = 0
    # (when acknowledged, event-to-prediction ms) of the latest events
    latencies_ms: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=LATENCY_WINDOW)
    )
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=200))

    def add_batch(self, events: int, poison: int, latencies_ms: list[float]) -> None:
        self.batches += 1
        self.events += events + poison
        self.predictions += events
        self.dead_lettered += poison
        now = time.time()
        self.latencies_ms.extend((now, latency) for latency in latencies_ms)
        self.batch_sizes.append(events + poison)
        self.recent.append((time.monotonic(), events + poison))

    def summary(self) -> dict[str, Any]:
        window = [n for at, n in self.recent if at > time.monotonic() - 10]
        return {
            "events": self.events,
            "predictions": self.predictions,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "batch_size_mean": float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0,
            "events_per_second": sum(window) / 10,
            "latency_ms": {
                "p50": self.percentile(50),
                "p99": self.percentile(99),
                # Knative's windows, for the auto-scaler: stable 60 s, panic 6 s.
                "p99_60s": self.percentile(99, seconds=60),
                "p99_6s": self.percentile(99, seconds=6),
            },
        }

    def percentile(self, q: float, seconds: float | None = None) -> float | None:
        since = time.time() - seconds if seconds else 0.0
        values = [latency for at, latency in self.latencies_ms if at >= since]
        return float(np.percentile(values, q)) if values else None


class ScoringConsumer:
    """One replica: consume, score, produce, then commit, until told to stop."""

    def __init__(self, spec: PipelineSpec, replica: Replica, scorer: Scorer) -> None:
        if spec.streaming is None:
            raise ValueError(f"{spec.name} has no streaming section")
        self.spec, self.streaming, self.replica, self.scorer = spec, spec.streaming, replica, scorer
        self.model = spec.model
        self.crashes = CrashGuard(replica.state_dir / spec.name, replica.slot)
        self.stats = Stats()
        self.moved = Moved()  # what a CostMeter records, minute by minute
        self.metrics = ReplicaMetrics(spec.name, replica.slot, replica.model_version)
        self.metrics_url: str | None = None  # set by serve_metrics
        self.model_version = replica.model_version  # a switch changes it between two batches
        self._next: tuple[Scorer, int] | None = None  # a loaded version waiting to take over
        self.switch_failed: dict[str, Any] | None = None  # the last version that did not load
        self.member_id = f"{self.streaming.consumer_group}-{replica.slot}"
        # the replica's online endpoint, when it serves one: its numbers join the heartbeat
        self.endpoint_summary: Callable[[], dict[str, Any]] | None = None
        self.prediction_log: PredictionLog | None = None  # every prediction, written apart
        self.shadow: ShadowScorer | None = None  # a challenger scoring a share, never served
        self._last_heartbeat, self._last_state = 0.0, ""
        self.consumer = self._consumer()
        self.producer = self._producer()

    # ------------------------------------------------------------------ clients
    def _consumer(self) -> KafkaConsumer:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

        streaming = self.streaming
        consumer = KafkaConsumer(
            bootstrap_servers=self.replica.bootstrap,
            **client_settings(),
            group_id=streaming.consumer_group,
            group_instance_id=self.member_id if streaming.static_membership else None,
            client_id=self.member_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group scores what is already waiting
            partition_assignment_strategy=(CooperativeStickyAssignor,),
            session_timeout_ms=streaming.session_timeout_ms,
            heartbeat_interval_ms=max(streaming.session_timeout_ms // 6, 500),
            max_poll_records=streaming.max_batch_size,
            fetch_max_wait_ms=max(streaming.max_wait_ms, 50),  # below ~50 ms Tansu stalls
            isolation_level="read_committed" if streaming.exactly_once else "read_uncommitted",
        )
        consumer.subscribe([streaming.input_topic])
        return consumer

    def _producer(self) -> KafkaProducer:
        from kafka import KafkaProducer

        # acks from every in-sync copy, idempotent (a retried send is not a duplicate), and a
        settings: dict[str, Any] = {"linger_ms": 5, "acks": "all", "enable_idempotence": True}
        # few ms of linger:
        if self.streaming.exactly_once:  # fewer, larger batches keep the broker's fetches fast
            settings["transactional_id"] = self.member_id
        producer = KafkaProducer(
            bootstrap_servers=self.replica.bootstrap, **settings, **client_settings()
        )
        if self.streaming.exactly_once:
            producer.init_transactions()
        return producer

    def serve_metrics(self, port: int, host: str = "127.0.0.1") -> str:
        """Serve Prometheus metrics on `host`:`port` (0: a free one); the URL goes in the
        heartbeat. Loopback unless told otherwise (a pod binds every interface and admits
        scrapers through its NetworkPolicy): the endpoint has no authentication."""
        _, bound = self.metrics.serve(port, host)
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        self.metrics_url = f"http://{shown}:{bound}/metrics"
        return self.metrics_url

    # ------------------------------------------------------------------ the loop
    def run(self, stop: StopFlag) -> Stats:
        """Score until `stop` is set, then drain: the batch in hand is produced and committed."""
        log.info(
            "replica %s of %s: scoring %s with v%d into %s",
            self.member_id,
            self.spec.name,
            self.streaming.input_topic,
            self.model_version,
            self.streaming.output_topic,
        )
        self._heartbeat(force=True, state="joining")
        # TensorFlow and the model are hundreds of thousands of long-lived objects: frozen,
        # the collector's full passes skip them. A full pass holds the GIL; over them it
        # stalled the loop for hundreds of ms (measured: p99 during a roll 399 ms, 105 ms
        # frozen, at 1,000 events/s).
        gc.freeze()
        while not stop.is_set():
            self._take_next_version()
            polled = self.consumer.poll(
                timeout_ms=self.streaming.max_wait_ms, max_records=self.streaming.max_batch_size
            )
            if polled:
                try:
                    self.process(polled)
                except BaseException:  # raised, so not a record's fault: no death to count
                    self.crashes.release()
                    raise
            self._heartbeat(state=self.state())
        self._heartbeat(force=True, state="draining")
        return self.stats

    def switch_to(self, scorer: Scorer, version: int) -> None:
        """Serve `version` (loaded and warmed up by the caller) from the next batch on: the
        replica keeps its partitions, so a roll moves no partition and stalls no event."""
        self._next = (scorer, version)

    def _take_next_version(self) -> None:
        if self._next is None:
            return
        (self.scorer, version), self._next = self._next, None
        log.info("switched from v%d to v%d", self.model_version, version)
        self.model_version, self.switch_failed = version, None
        self.metrics.serving(version)
        self._heartbeat(force=True, state=self.state())

    def state(self) -> str:
        """ "running" once the group gave this replica partitions: before that it scores
        nothing, and a rollout that moved on to the next replica would restart the group's
        rebalance under it."""
        return "running" if self.consumer.assignment() else "joining"

    def process(self, polled: dict[Any, list[Any]]) -> None:
        """Score one polled batch, produce its results, then commit its offsets. Nothing one
        event holds stops the batch: it becomes that event's dead letter (see `_score`)."""
        from kafka.structs import OffsetAndMetadata

        records = [record for batch in polled.values() for record in batch]
        offsets = {
            tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1) for tp, batch in polled.items()
        }
        scored, poison = self._read_and_score(records)
        if self.streaming.exactly_once:
            self.producer.begin_transaction()
        futures = self._send_predictions(scored)
        futures += [self._send_dead_letter(record, why) for record, why in poison]
        if self.streaming.exactly_once:
            self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            self.producer.commit_transaction()
        else:
            self.producer.flush()
            for future in futures:
                future.get(timeout=0)  # raises if the broker refused one: nothing committed
            self.consumer.commit(offsets)
        acked_ms = time.time() * 1000
        latencies = [acked_ms - scoring.event.created_ms for scoring in scored]
        self.stats.add_batch(len(scored), len(poison), latencies)
        self.moved.events += len(records)
        self.moved.predictions += len(scored)
        self.moved.kafka_bytes_read += sum(len(record.value or b"") for record in records)
        self.metrics.batch(len(scored), [why.kind for _, why in poison], latencies)
        if self.prediction_log is not None and scored:
            self._log(self.prediction_log, scored, latencies)

    def _log(self, into: PredictionLog, scored: list[Scored], latencies: list[float]) -> None:
        """Hand the batch to the prediction log (references only: its thread builds rows)."""
        events = [item.event for item in scored]
        model = self.model
        entry = Logged("kafka", [event.event_id for event in events],
                       lambda: features_table(events, model),
                       np.fromiter((item.score for item in scored), np.float32, len(scored)),
                       self.model_version, latencies, time.time())  # fmt: skip
        into.add(entry)
        if self.shadow is not None:  # a challenger in shadow scores a share of them, apart
            self.shadow.offer("kafka", entry.ids, entry.features)

    def _read_and_score(self, records: list[Any]) -> tuple[list[Scored], list[Rejected]]:
        """Each record's score or dead letter. Records a death of a replica covered are read
        one at a time (each named first, so a second death names it); two deaths: refused."""
        fresh: list[Any] = []  # Kafka records
        suspects: list[Any] = []
        poison: list[Rejected] = []
        for record in records:
            deaths = self.crashes.deaths(record)
            if deaths >= 2:
                why = f"a replica died {deaths} times reading or scoring it; not read again"
                poison.append((record, Poison(why, "crash")))
            else:
                (suspects if deaths else fresh).append(record)
        batches = ([fresh] if fresh else []) + [[record] for record in suspects]
        scored: list[Scored] = []
        for batch in batches:
            self.crashes.hold(batch)
            good, bad = self._score(batch)
            scored, poison = scored + good, poison + bad
        self.crashes.release()  # from here on a death is the broker's, not a record's
        return scored, poison

    def _score(self, records: list[Any]) -> tuple[list[Scored], list[Rejected]]:
        parsed = [(record, self._parse(record)) for record in records]
        events = [(r, p) for r, p in parsed if isinstance(p, Event)]
        poison = [(r, p) for r, p in parsed if isinstance(p, Poison)]
        scored, failed = self._score_isolating(events)
        if failed and not scored:
            self._check_scorer(failed)  # every event failed: the model, or these events?
        return scored, poison + failed

    def _score_isolating(
        self, events: list[tuple[Any, Event]]
    ) -> tuple[list[Scored], list[Rejected]]:
        """Score `events` in one call; if it raises, split the batch until the events that
        fail alone are found (a few extra calls, only when something fails)."""
        if not events:
            return [], []
        try:
            scores = np.asarray(self.scorer(features_table([e for _, e in events], self.model)))
            if scores.shape[0] != len(events):
                raise ValueError(f"{scores.shape[0]} scores for {len(events)} events")
        except Exception as exc:
            if len(events) == 1:
                reason = f"scoring failed: {type(exc).__name__}: {str(exc)[:300]}"
                return [], [(events[0][0], Poison(reason, "scoring"))]
            half = len(events) // 2
            first, second = (
                self._score_isolating(events[:half]),
                self._score_isolating(events[half:]),
            )
            return first[0] + second[0], first[1] + second[1]
        scored, failed = [], []
        for (record, event), score in zip(events, scores.reshape(len(events), -1)[:, 0],
                                          strict=True):  # fmt: skip
            if math.isfinite(score):
                scored.append(Scored(record, event, float(score)))
            else:  # never written: NaN is not JSON
                failed.append((record, Poison(f"the model scored it {score}", "scoring")))
        return scored, failed

    def _check_scorer(self, failed: list[Rejected]) -> None:
        """Every event of a batch failed to score: if a known-good row fails too, the model
        is at fault, not the events, so raise (the replica restarts) instead of sending good
        events to the dead-letter topic."""
        try:
            score = np.asarray(self.scorer(features_table([probe_event(self.model)], self.model)))
            healthy = score.size >= 1 and bool(np.isfinite(score).all())
        except Exception as exc:
            raise ScorerBroken(f"the model fails on a known-good row too: {exc}") from exc
        if not healthy:
            raise ScorerBroken(f"the model scores a known-good row {score.ravel()[:1]}")

    def _parse(self, record: Any) -> Event | Poison:
        return parse_event(
            record.key,
            record.value,
            record.timestamp,
            self.spec.model,
            self.streaming.max_event_bytes,
        )

    def _send_predictions(self, scored: list[Scored]) -> list[Any]:
        scored_ms = time.time() * 1000
        version, topic = self.model_version, self.streaming.output_topic
        futures = []
        for item in scored:
            event = item.event
            record = item.record
            prediction = {
                "event_id": event.event_id,
                "score": item.score,
                "model_version": version,
                "latency_ms": round(scored_ms - event.created_ms, 3),
                "replica": self.replica.slot,
                # Where the event was read: `loopline trace` finds its input from here.
                "input": {"topic": record.topic, "partition": record.partition,
                          "offset": record.offset, "timestamp_ms": event.created_ms},
            }  # fmt: skip
            value = json.dumps(prediction, allow_nan=False).encode()
            self.moved.kafka_bytes_written += len(value)
            futures.append(self.producer.send(topic, key=event.event_id.encode(), value=value))
        return futures

    def _send_dead_letter(self, record: Any, poison: Poison) -> FutureRecordMetadata:
        letter = {
            "reason": poison.reason,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": _text(record.key),
            "value": _text(record.value),
            # the exact bytes too, bounded: what a replay sends again (see .dead_letters)
            **kept_value(record.value, self.streaming.max_event_bytes),
        }
        value = json.dumps(letter).encode()
        self.moved.kafka_bytes_written += len(value)
        return self.producer.send(
            self.streaming.dead_letters,
            key=record.key,
            value=value,
            headers=[(REASON_HEADER, poison.reason.encode()[:1000])],
        )

    # ------------------------------------------------------------------ state
    def _heartbeat(self, force: bool = False, state: str = "running") -> None:
        now = time.monotonic()
        due = now - self._last_heartbeat >= self.replica.heartbeat_seconds
        if not (force or due or state != self._last_state):
            return
        self._last_state = state
        self._last_heartbeat = now
        lag = self._lag()
        crashes = self.crashes.recent()
        self.metrics.state(state, lag, len(crashes))
        beat = {
            "pipeline": self.spec.name,
            "slot": self.replica.slot,
            "member": self.member_id,
            "pid": os.getpid(),
            "model_version": self.model_version,
            "switch_failed": self.switch_failed,
            "state": state,
            "updated_at": time.time(),
            "assigned": sorted(tp.partition for tp in self.consumer.assignment()),
            "lag": lag,
            "metrics_url": self.metrics_url,
            # deaths of this slot's processes while they held records: crash-looping
            "crashes": crashes,
            **self.stats.summary(),
        }
        if self.endpoint_summary is not None:
            beat["endpoint"] = self.endpoint_summary()
        if self.prediction_log is not None:
            beat["prediction_log"] = self.prediction_log.summary()
        if self.shadow is not None:
            beat["shadow"] = self.shadow.summary()
        write_atomically(self.replica.heartbeat_path, json.dumps(beat).encode(), durable=False)

    def _lag(self) -> int | None:
        """Events waiting in this replica's partitions: high watermark (from the last fetch,
        right even where a broker's reported end offset is not) minus position."""
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                return None
            total += max(highwater - self.consumer.position(tp), 0)
        return total

    def close(self, retire: bool = False) -> None:
        """Flush and close; `retire`: also leave the group, so the partitions move now."""
        self.producer.flush()
        self.producer.close()
        self.consumer.close(autocommit=False)
        if retire and self.streaming.static_membership:  # dynamic members leave on close
            leave_group(self.replica.bootstrap, self.streaming.consumer_group, self.member_id)
        self._heartbeat_closed()

    def _heartbeat_closed(self) -> None:
        path = self.replica.heartbeat_path
        if path.exists():
            beat = json.loads(path.read_text())
            beat.update(state="stopped", updated_at=time.time(), **self.stats.summary())
            self.metrics.state("stopped", None)
            write_atomically(path, json.dumps(beat).encode(), durable=False)


def leave_group(bootstrap: str, group: str, member: str) -> None:
    """Remove a static member (which never leaves by itself) from its group."""
    from kafka.admin import KafkaAdminClient, MemberToRemove

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_settings())
    try:
        admin.remove_group_members(group, [MemberToRemove(group_instance_id=member)])
    finally:
        admin.close()


def _text(data: bytes | None) -> str | None:
    return preview(data)
