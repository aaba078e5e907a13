"""The telemetry exporter: one process, one loopback port, three jobs.

- ``GET /metrics``: Loopline's records as metrics (``record_metrics``), Airflow's metrics as
  received over OTLP (``otlp``), and the exporter's own health, in Prometheus' text format.
- ``POST /v1/metrics``: the OTLP/HTTP receiver Airflow's processes send to.
- In the background, every `refresh` seconds: read new records (a bounded number per
  pipeline), the champion where promotions changed, and rewrite the replicas' targets file.

A scrape only renders what the last background pass built, so it never waits on S3.

``python -m loopline.telemetry.exporter --port P --state-dir D --pipelines-dir F``, with the
S3 settings in ``LOOPLINE_S3`` (JSON, as the replicas get them).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from loopline.records.envelope import RecordStage
from loopline.records.store import RecordStore
from loopline.telemetry.otlp import (
    MAX_BODY_BYTES,
    OtlpMetrics,
    OtlpRequestError,
    export_response,
)
from loopline.telemetry.prometheus import TARGETS_FILE
from loopline.telemetry.record_metrics import PipelineRecords, RecordFacts, record_families
from loopline.telemetry.targets import replica_targets, write_targets

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from loopline.storage.objects import ObjectStore

log = logging.getLogger("loopline.telemetry")

SELF_METRICS = (
    "loopline_telemetry_refresh_seconds",
    "loopline_telemetry_last_refresh_timestamp_seconds",
    "loopline_telemetry_records_pending",
    "loopline_telemetry_bad_records",
    "loopline_telemetry_refresh_errors_total",
    "loopline_telemetry_otlp_points_total",
    "loopline_telemetry_otlp_dropped_points_total",
    "loopline_telemetry_replica_targets",
)


@dataclass
class _Pipeline:
    records: PipelineRecords
    registry_bucket: str
    promotions_seen: int = -1  # promotion and rollback records when the champion was read
    champion: int | None = None
    pending: int = 0


@dataclass
class RefreshState:
    """What the last background pass built, swapped in whole so a scrape sees one pass."""

    families: list[Metric] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: float = 0.0
    pending: dict[str, int] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)
    targets: int = 0


class TelemetryExporter(Collector):
    """Keeps the record facts of each pipeline the specs name, and serves them with the
    OTLP metrics received."""

    def __init__(
        self,
        store: ObjectStore,
        pipelines: Callable[[], dict[str, str]],
        state_dir: Path | None,
        targets_file: Path | None,
        budget: int = 500,
    ) -> None:
        self.store, self.pipelines, self.budget = store, pipelines, budget
        self.state_dir, self.targets_file = state_dir, targets_file
        self.otlp = OtlpMetrics()
        self.state = RefreshState()
        self.errors = 0
        self._pipelines: dict[str, _Pipeline] = {}

    # ------------------------------------------------------------------ background pass
    def refresh(self) -> None:
        """One pass. A pipeline whose records cannot be read keeps its last facts and the
        error is logged and counted: one bucket down must not blank every dashboard."""
        started = time.monotonic()
        wanted = self.pipelines()
        for gone in set(self._pipelines) - set(wanted):
            del self._pipelines[gone]
        facts: dict[str, list[RecordFacts]] = {}
        for name, bucket in sorted(wanted.items()):
            pipeline = self._pipeline(name, bucket)
            try:
                self._refresh_pipeline(name, pipeline)
            except Exception:
                self.errors += 1
                log.exception("reading the records of %s from s3://%s failed", name, bucket)
            facts[name] = pipeline.records.facts()
        targets = self._write_targets()
        champions = {name: p.champion for name, p in self._pipelines.items()}
        self.state = RefreshState(
            families=record_families(facts, champions),
            seconds=time.monotonic() - started,
            finished_at=time.time(),
            pending={name: p.pending for name, p in self._pipelines.items()},
            bad={name: p.records.bad_records() for name, p in self._pipelines.items()},
            targets=targets,
        )

    def _pipeline(self, name: str, bucket: str) -> _Pipeline:
        known = self._pipelines.get(name)
        if known is None or known.registry_bucket != bucket:
            records = PipelineRecords(RecordStore(self.store, bucket), name, self.budget)
            known = self._pipelines[name] = _Pipeline(records, bucket)
        return known

    def _refresh_pipeline(self, name: str, pipeline: _Pipeline) -> None:
        result = pipeline.records.refresh()
        pipeline.pending = result.pending
        moves = sum(
            fact.stage in (RecordStage.PROMOTION, RecordStage.ROLLBACK)
            for fact in pipeline.records.facts()
        )
        if moves != pipeline.promotions_seen:  # the registry's alias history, read on change
            from loopline.registry import CHAMPION, ModelRegistry

            registry = ModelRegistry(self.store, pipeline.registry_bucket)
            pipeline.champion = registry.alias(name, CHAMPION)
            pipeline.promotions_seen = moves

    def _write_targets(self) -> int:
        if self.state_dir is None or self.targets_file is None:
            return 0
        try:
            entries = replica_targets(self.state_dir)
            write_targets(self.targets_file, entries)
        except Exception:
            self.errors += 1
            log.exception("writing the replicas' targets to %s failed", self.targets_file)
            return self.state.targets
        return len(entries)

    # ------------------------------------------------------------------ scrape
    def collect(self) -> Iterator[Metric]:
        state = self.state
        yield from state.families
        yield from self.otlp.families()
        yield from self._own(state)

    def _own(self, state: RefreshState) -> Iterable[Metric]:
        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def per_pipeline(name: str, doc: str, values: dict[str, int]) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["pipeline"])
            for pipeline, value in sorted(values.items()):
                family.add_metric([pipeline], value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name.removesuffix("_total"), doc, value=value)

        return [
            gauge(SELF_METRICS[0], "Seconds the last background pass took", state.seconds),
            gauge(SELF_METRICS[1], "When the last background pass ended", state.finished_at),
            per_pipeline(SELF_METRICS[2], "Records not read yet (a backlog)", state.pending),
            per_pipeline(SELF_METRICS[3], "Objects under records/ that are not records", state.bad),
            counter(SELF_METRICS[4], "Background passes that failed in part", self.errors),
            counter(SELF_METRICS[5], "OTLP data points received", self.otlp.points),
            counter(SELF_METRICS[6], "OTLP data points dropped", self.otlp.dropped),
            gauge(SELF_METRICS[7], "Replicas in the targets file", state.targets),
        ]


# ---------------------------------------------------------------------- HTTP


def wsgi_app(exporter: TelemetryExporter, registry: CollectorRegistry) -> Callable[..., Any]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/v1/metrics":
            if method != "POST":
                return _answer(start_response, "405 Method Not Allowed", b"POST only\n")
            return _receive(exporter, environ, start_response)
        if path in ("/metrics", "/"):
            return list(metrics_app(environ, start_response))
        return _answer(start_response, "404 Not Found", b"/metrics or /v1/metrics\n")

    return app


def _receive(
    exporter: TelemetryExporter, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip()
    if kind != "application/x-protobuf":
        why = f"Content-Type {kind!r}: only application/x-protobuf (OTLP/HTTP binary)\n"
        return _answer(start_response, "415 Unsupported Media Type", why.encode())
    length = str(environ.get("CONTENT_LENGTH") or "")
    if not length.isdigit():
        return _answer(start_response, "411 Length Required", b"Content-Length required\n")
    if int(length) > MAX_BODY_BYTES:
        too_large = f"over {MAX_BODY_BYTES} bytes\n".encode()
        return _answer(start_response, "413 Content Too Large", too_large)
    body = environ["wsgi.input"].read(int(length))
    try:
        dropped = exporter.otlp.receive(body, environ.get("HTTP_CONTENT_ENCODING", ""))
    except OtlpRequestError as exc:
        log.warning("refused an OTLP request: %s", exc)
        return _answer(start_response, "400 Bad Request", f"{exc}\n".encode())
    return _answer(start_response, "200 OK", export_response(dropped), "application/x-protobuf")


def _answer(
    start_response: StartResponse, status: str, body: bytes, kind: str = "text/plain"
) -> list[bytes]:
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client never holds the process at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Every scrape and export would be a log line; errors are logged where handled."""


def serve(exporter: TelemetryExporter, host: str, port: int) -> WSGIServer:
    """The HTTP server (not yet serving: call ``serve_forever``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    return make_server(
        host, port, wsgi_app(exporter, registry), _ThreadingServer, handler_class=_QuietHandler
    )


def refresh_forever(exporter: TelemetryExporter, every: float, stop: threading.Event) -> None:
    """A pass every `every` seconds, or four times as long as the last pass took: a pass
    lists every record (~0.5 ms a record against the local moto server, 2 cores), so months
    of records slow the passes down rather than keep a core busy."""
    while not stop.is_set():
        try:
            exporter.refresh()
        except Exception:  # the specs unreadable, say: the next pass tries again
            exporter.errors += 1
            log.exception("a background pass failed")
        stop.wait(max(every, 4 * exporter.state.seconds))


# ---------------------------------------------------------------------- the process


def spec_buckets(folder: Path) -> Callable[[], dict[str, str]]:
    """pipeline -> bucket of the specs in `folder`, checked as the DAG files check them and
    read again only when a spec file changes (a bad spec is logged and left out, as Airflow
    leaves out its DAGs)."""
    from loopline.plan.check import check_pipelines
    from loopline.spec import describe_errors
    from loopline.spec.loader import spec_files

    seen: dict[str, Any] = {"stamp": None, "buckets": {}}

    def buckets() -> dict[str, str]:
        stamp = [(p.name, p.stat().st_mtime_ns) for p in spec_files(folder)]
        if stamp != seen["stamp"]:
            check = check_pipelines(folder)
            if check.errors:
                log.error("specs left out:\n%s", describe_errors(check.errors))
            seen["buckets"] = {p.spec.name: p.spec.data.bucket for p in check.pipelines}
            seen["stamp"] = stamp
        return dict(seen["buckets"])

    return buckets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True, help="the stack's state")
    parser.add_argument("--pipelines-dir", type=Path, required=True)
    parser.add_argument("--refresh-seconds", type=float, default=10.0)
    parser.add_argument("--budget", type=int, default=500, help="records read per pipeline a pass")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from loopline.storage.objects import ObjectStore
    from loopline.storage.settings import S3Settings

    if "LOOPLINE_S3" not in os.environ:
        parser.error("LOOPLINE_S3 (the S3 settings as JSON) is not set")
    store = ObjectStore(S3Settings.from_json(os.environ["LOOPLINE_S3"]).boto3_client())
    targets = args.state_dir / "prometheus" / TARGETS_FILE
    exporter = TelemetryExporter(
        store, spec_buckets(args.pipelines_dir), args.state_dir, targets, args.budget
    )
    server = serve(exporter, args.host, args.port)
    stop = threading.Event()
    refresher = threading.Thread(
        target=refresh_forever, args=(exporter, args.refresh_seconds, stop), daemon=True
    )
    refresher.start()

    def shut_down(signum: int, _frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    log.info("serving /metrics and /v1/metrics on http://%s:%d", args.host, args.port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
