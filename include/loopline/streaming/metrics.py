"""A replica's Prometheus metrics: what its heartbeat says, in the form scrapers read.

One registry per replica (not the process-wide default, so tests and several consumers in a
process do not collide). Counters for events, predictions and dead letters (by reason),
histograms of event-to-prediction latency and batch size, gauges for lag, state and the
model version: the same numbers an auto-scaler (KEDA's Prometheus scaler, an HPA on external
metrics) or a dashboard wants.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

# Event-to-prediction latency buckets (seconds): the floor's p50 is ~20 ms, its p99 ~100 ms.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
STATES = ("joining", "running", "draining", "stopped")


class ReplicaMetrics:
    def __init__(self, pipeline: str, slot: int, model_version: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The process's CPU seconds and memory: a replica's cost, as a scraper reads it.
        ProcessCollector(registry=self.registry)
        labels = {"pipeline": pipeline, "slot": str(slot)}
        names = list(labels)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*names, *extra], registry=self.registry)

        self.events = counter("loopline_stream_events", "Events consumed").labels(**labels)
        self.predictions = counter(
            "loopline_stream_predictions", "Predictions produced and acknowledged"
        ).labels(**labels)
        self._dead = counter(
            "loopline_stream_dead_letters", "Events dead-lettered, by reason kind", ("reason",)
        )
        self.batches = counter("loopline_stream_batches", "Micro-batches committed").labels(
            **labels
        )
        self.latency = Histogram(
            "loopline_stream_latency_seconds",
            "Event timestamp to the broker's acknowledgement of its prediction",
            names,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.batch_size = Histogram(
            "loopline_stream_batch_size", "Events per micro-batch", names,
            buckets=BATCH_BUCKETS, registry=self.registry,
        ).labels(**labels)  # fmt: skip
        self.lag = Gauge(
            "loopline_stream_lag", "Events waiting in this replica's partitions", names,
            registry=self.registry,
        ).labels(**labels)  # fmt: skip
        self._state = Gauge(
            "loopline_stream_state", "1 for the replica's current state", [*names, "state"],
            registry=self.registry,
        )  # fmt: skip
        self._version = Gauge(
            "loopline_stream_model_version", "The model version this replica serves", names,
            registry=self.registry,
        ).labels(**labels)  # fmt: skip
        self._version.set(model_version)
        self.crashes = Gauge(
            "loopline_stream_recent_crashes",
            "Deaths of this slot's replica while it held records, in the last 10 minutes "
            "(above 0: crash-looping on a record; the heartbeat names partition and offset)",
            names, registry=self.registry,
        ).labels(**labels)  # fmt: skip
        self._labels = labels

    def batch(self, events: int, poison_kinds: list[str], latencies_ms: list[float]) -> None:
        self.batches.inc()
        self.events.inc(events + len(poison_kinds))
        self.predictions.inc(events)
        self.batch_size.observe(events + len(poison_kinds))
        for kind in poison_kinds:
            self._dead.labels(**self._labels, reason=kind).inc()
        for latency in latencies_ms:
            self.latency.observe(latency / 1000)

    def serving(self, model_version: int) -> None:
        self._version.set(model_version)

    def state(self, state: str, lag: int | None, recent_crashes: int = 0) -> None:
        self.crashes.set(recent_crashes)
        for name in STATES:
            self._state.labels(**self._labels, state=name).set(1 if name == state else 0)
        if lag is not None:
            self.lag.set(lag)

    def serve(self, port: int, address: str = "127.0.0.1") -> tuple[Any, int]:
        """Serve /metrics on `port` (0: a free one); returns the server and its port."""
        server, _ = start_http_server(port, address, registry=self.registry)
        return server, server.server_port
