"""Airflow's OpenTelemetry metrics, received over OTLP/HTTP and re-exposed for Prometheus.

Why this is hand-written: Airflow 3.3 emits metrics as OTLP only (StatsD needs a package this
project does not lock), and neither end here can bridge: Debian 12's Prometheus 2.42 has no
OTLP receiver (``--web.enable-otlp-receiver`` came in 2.47) and Debian packages neither the
OpenTelemetry Collector nor statsd_exporter. So the exporter takes ``POST /v1/metrics``
(protobuf ``ExportMetricsServiceRequest``, opentelemetry-proto's own classes) and keeps the
latest value of each stream, as the Collector's Prometheus exporter would:

- a monotonic sum is a counter, a non-monotonic sum (an up-down counter) and a gauge are
  gauges, a histogram (explicit or exponential) or summary is a summary with ``_count`` and
  ``_sum`` (Airflow's timers are exponential histograms, which Prometheus 2.42 reads only as
  native histograms over protobuf scrapes: count and sum give rates and means);
- names as the Collector writes them: ``airflow.ti.finish`` is ``airflow_ti_finish_total``.

Several processes send the same metric with the same attributes (every task process its own
``task.duration``), so a stream is one metric, attributes, resource and *start time*: OTLP's
own identity of a cumulative series (a new start time is a new series). A counter is the sum
of its streams' latest values, and a stream that falls silent (its process ended) keeps its
last value in that sum, so counters never go back. Memory and work are bounded: a request
body (after gzip) of at most `MAX_BODY_BYTES`, at most `max_streams` live streams.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024  # Airflow sends ~10-50 KiB per export here
RETIRE_AFTER_SECONDS = 600.0  # a cumulative exporter resends every stream each interval
RETIRED_KEPT = 20_000
Kind = Literal["counter", "updown", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]
StreamKey = tuple[str, Labels, str]  # name, attributes, stream identity
_DELTA = 1  # AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK


class OtlpRequestError(ValueError):
    """A body that is not an OTLP metrics request this receiver takes."""


@dataclass
class _Stream:
    value: float = 0.0  # counter, up-down counter, gauge
    count: float = 0.0  # histogram
    total: float = 0.0  # histogram
    point_time: int = 0  # the point's own time (ns)
    seen: float = 0.0  # when it last arrived (monotonic)


@dataclass
class _Point:
    labels: Labels
    start: int
    time: int
    value: float = 0.0
    count: float = 0.0
    total: float = 0.0


class OtlpMetrics:
    """The latest value of every stream received, as Prometheus families."""

    def __init__(
        self,
        max_streams: int = 20_000,
        retire_after: float = RETIRE_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_streams, self.retire_after, self.clock = max_streams, retire_after, clock
        self._lock = threading.Lock()
        self._kinds: dict[str, tuple[Kind, str]] = {}  # name -> (kind, description)
        self._live: dict[StreamKey, _Stream] = {}
        # Silent streams of counters and histograms keep counting (most recent last); past
        # RETIRED_KEPT the oldest fold into `_folded` for good.
        self._retired: OrderedDict[StreamKey, _Stream] = OrderedDict()
        self._folded: dict[tuple[str, Labels], _Stream] = defaultdict(_Stream)
        self.points = 0
        self.dropped = 0

    # ------------------------------------------------------------------ receiving
    def receive(self, body: bytes, content_encoding: str = "") -> int:
        """Take one ``ExportMetricsServiceRequest``; returns the points dropped (too many
        streams, or a name already seen as another kind)."""
        request = _parse(_decoded(body, content_encoding))
        dropped = 0
        with self._lock:
            for resource_metrics in request.resource_metrics:
                resource = _labels(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    source = f"{resource}|{scope_metrics.scope.name}"
                    for metric in scope_metrics.metrics:
                        dropped += self._take(metric, source)
        return dropped

    def _take(self, metric: Any, source: str) -> int:
        kind, points, delta = _points_of(metric)
        if kind is None:
            return 0
        name = prometheus_name(metric.name, kind)
        known = self._kinds.setdefault(name, (kind, metric.description or metric.name))
        if known[0] != kind:
            log.warning("%s came as a %s after a %s: its points are dropped", name, kind, known[0])
            self.dropped += len(points)
            return len(points)
        dropped = 0
        for point in points:
            # A delta stream adds up in one place; a cumulative one is its own stream per
            # start time (a restarted or forked process starts a new one).
            identity = f"{source}|delta" if delta else f"{source}|{point.start}"
            if not self._update((name, point.labels, identity), point, delta):
                dropped += 1
        self.points += len(points) - dropped
        self.dropped += dropped
        return dropped

    def _update(self, key: StreamKey, point: _Point, delta: bool) -> bool:
        stream = self._live.get(key) or self._retired.pop(key, None)
        if stream is None:
            if len(self._live) >= self.max_streams:
                return False
            stream = _Stream()
        self._live[key] = stream
        stream.seen = self.clock()
        if delta:
            stream.value += point.value
            stream.count += point.count
            stream.total += point.total
        elif point.time < stream.point_time:
            pass  # an older point of the stream (a forked child's frozen copy): ignored
        else:
            stream.value, stream.count, stream.total = point.value, point.count, point.total
        stream.point_time = max(stream.point_time, point.time)
        return True

    # ------------------------------------------------------------------ exposing
    def families(self) -> list[Metric]:
        with self._lock:
            self._retire_silent()
            return [self._family(name, kind, doc) for name, (kind, doc) in self._kinds.items()]

    def _retire_silent(self) -> None:
        now = self.clock()
        for key, stream in list(self._live.items()):
            if now - stream.seen <= self.retire_after:
                continue
            del self._live[key]
            if self._kinds[key[0]][0] in ("counter", "histogram"):
                self._retired[key] = stream
        while len(self._retired) > RETIRED_KEPT:
            (name, labels, _), stream = self._retired.popitem(last=False)
            folded = self._folded[(name, labels)]
            folded.value += stream.value
            folded.count += stream.count
            folded.total += stream.total

    def _family(self, name: str, kind: Kind, doc: str) -> Metric:
        streams = self._streams_of(name, kind)
        labels = sorted({key for stream_labels, _ in streams for key, _ in stream_labels})
        grouped: dict[Labels, list[_Stream]] = defaultdict(list)
        for stream_labels, stream in streams:
            grouped[stream_labels].append(stream)
        rows = [
            ([dict(stream_labels).get(label, "") for label in labels], group)
            for stream_labels, group in sorted(grouped.items())
        ]
        if kind == "histogram":
            summary = SummaryMetricFamily(name, doc, labels=labels)
            for values, group in rows:
                count = sum(s.count for s in group)
                summary.add_metric(values, count_value=count, sum_value=sum(s.total for s in group))  # type: ignore[arg-type]  # the client types a count as int; OTLP's float counts render the same
            return summary
        if kind == "counter":
            counter = CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)
            for values, group in rows:
                counter.add_metric(values, sum(s.value for s in group))
            return counter
        gauge = GaugeMetricFamily(name, doc, labels=labels)
        for values, group in rows:
            if kind == "gauge":  # the newest point wins, whichever process sent it
                gauge.add_metric(values, max(group, key=lambda s: s.point_time).value)
            else:  # an up-down counter adds up over its processes' streams
                gauge.add_metric(values, sum(s.value for s in group))
        return gauge

    def _streams_of(self, name: str, kind: Kind) -> list[tuple[Labels, _Stream]]:
        streams = [(key[1], s) for key, s in self._live.items() if key[0] == name]
        if kind in ("counter", "histogram"):
            streams += [(key[1], s) for key, s in self._retired.items() if key[0] == name]
            streams += [(key[1], s) for key, s in self._folded.items() if key[0] == name]
        return streams


def prometheus_name(name: str, kind: Kind) -> str:
    """The Collector's Prometheus name: invalid characters become ``_``; counters end in
    ``_total``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    if cleaned[:1].isdigit():
        cleaned = f"_{cleaned}"
    if kind == "counter" and not cleaned.endswith("_total"):
        cleaned += "_total"
    return cleaned


def _label_name(key: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return f"key_{cleaned}" if cleaned[:1].isdigit() or cleaned.startswith("__") else cleaned


def _labels(attributes: Iterable[Any]) -> Labels:
    """Attributes as sorted label pairs; values as text, cut at 256 characters."""
    pairs = {_label_name(kv.key): _text(kv.value)[:256] for kv in attributes}
    return tuple(sorted(pairs.items()))


def _text(value: Any) -> str:
    which = value.WhichOneof("value")
    if which is None:
        return ""
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which in ("array_value", "kvlist_value", "bytes_value"):
        return str(getattr(value, which)).replace("\n", " ")
    return str(getattr(value, which))


def _points_of(metric: Any) -> tuple[Kind | None, list[_Point], bool]:
    """(kind, points, delta temporality) of one metric; kind None for an empty metric."""
    which = metric.WhichOneof("data")
    if which is None:
        return None, [], False
    data = getattr(metric, which)
    delta = getattr(data, "aggregation_temporality", 0) == _DELTA
    points = [p for p in data.data_points if not p.flags & _NO_RECORDED_VALUE]
    if which in ("sum", "gauge"):
        kind: Kind = "gauge" if which == "gauge" else "counter" if data.is_monotonic else "updown"
        numbers = [_number(p) for p in points]
        return kind, numbers, delta and kind != "gauge"
    return "histogram", [_counted(p) for p in points], delta


def _number(point: Any) -> _Point:
    value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
    labels = _labels(point.attributes)
    return _Point(labels, point.start_time_unix_nano, point.time_unix_nano, float(value))


def _counted(point: Any) -> _Point:
    labels = _labels(point.attributes)
    return _Point(
        labels,
        point.start_time_unix_nano,
        point.time_unix_nano,
        count=float(point.count),
        total=float(point.sum),
    )


def _decoded(body: bytes, content_encoding: str) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        data = body
    elif encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, MAX_BODY_BYTES + 1)
        except zlib.error as exc:
            raise OtlpRequestError(f"the gzip body does not inflate: {exc}") from exc
    else:
        raise OtlpRequestError(f"Content-Encoding {content_encoding!r}: only gzip is taken")
    if len(data) > MAX_BODY_BYTES:
        raise OtlpRequestError(f"the request is over {MAX_BODY_BYTES} bytes")
    return data


def _parse(data: bytes) -> Any:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    try:
        return ExportMetricsServiceRequest.FromString(data)
    except DecodeError as exc:
        raise OtlpRequestError(f"not an OTLP ExportMetricsServiceRequest: {exc}") from exc


def export_response(rejected: int) -> bytes:
    """The OTLP answer: empty, or a partial success naming how many points were dropped."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    response = ExportMetricsServiceResponse()
    if rejected:
        response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = "stream limit reached or a kind changed"
    return bytes(response.SerializeToString())
