"""The OTLP receiver: OTLP's data model to Prometheus families, on real protobuf requests."""

from __future__ import annotations

import gzip

import pytest
from loopline.telemetry.otlp import (
    MAX_BODY_BYTES,
    OtlpMetrics,
    OtlpRequestError,
    export_response,
    prometheus_name,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = pb.AGGREGATION_TEMPORALITY_DELTA


def attributes(**values: str) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()]


def request(*metrics: pb.Metric, service: str = "airflow") -> bytes:
    message = ExportMetricsServiceRequest()
    resource_metrics = message.resource_metrics.add()
    resource_metrics.resource.attributes.extend(attributes(**{"service.name": service}))
    resource_metrics.scope_metrics.add().metrics.extend(metrics)
    return message.SerializeToString()


def counter(name, value, start, at, temporality=CUMULATIVE, **labels) -> pb.Metric:
    point = pb.NumberDataPoint(
        start_time_unix_nano=start, time_unix_nano=at, as_int=value,
        attributes=attributes(**labels),
    )  # fmt: skip
    data = pb.Sum(data_points=[point], aggregation_temporality=temporality, is_monotonic=True)
    return pb.Metric(name=name, sum=data)


def gauge(name, value, at, **labels) -> pb.Metric:
    point = pb.NumberDataPoint(time_unix_nano=at, as_double=value, attributes=attributes(**labels))
    return pb.Metric(name=name, gauge=pb.Gauge(data_points=[point]))


def exponential(name, count, total, start, at) -> pb.Metric:
    point = pb.ExponentialHistogramDataPoint(
        start_time_unix_nano=start, time_unix_nano=at, count=count, sum=total, scale=3
    )
    data = pb.ExponentialHistogram(data_points=[point], aggregation_temporality=CUMULATIVE)
    return pb.Metric(name=name, exponential_histogram=data)


def exposed(metrics: OtlpMetrics) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.families()
        for sample in family.samples
    }


def test_names_follow_the_collector() -> None:
    assert prometheus_name("airflow.ti.finish", "counter") == "airflow_ti_finish_total"
    assert prometheus_name("airflow.pool.open_slots", "gauge") == "airflow_pool_open_slots"
    assert prometheus_name("9lives", "gauge") == "_9lives"


def test_a_counter_adds_up_the_streams_of_every_process_and_never_goes_back() -> None:
    metrics = OtlpMetrics()
    labels = {"dag_id": "d", "state": "success"}
    metrics.receive(request(counter("airflow.ti.finish", 3, start=100, at=200, **labels)))
    metrics.receive(request(counter("airflow.ti.finish", 2, start=150, at=210, **labels)))
    metrics.receive(request(counter("airflow.ti.finish", 5, start=100, at=300, **labels)))
    # An older point of the first stream (a forked child's frozen copy) changes nothing.
    metrics.receive(request(counter("airflow.ti.finish", 1, start=100, at=250, **labels)))
    key = ("airflow_ti_finish_total", tuple(sorted(labels.items())))
    assert exposed(metrics)[key] == 7
    assert metrics.points == 4 and metrics.dropped == 0


def test_a_silent_stream_keeps_counting_and_can_come_back() -> None:
    now = [0.0]
    metrics = OtlpMetrics(retire_after=60, clock=lambda: now[0])
    metrics.receive(request(counter("airflow.scheduler_heartbeat", 10, start=1, at=2)))
    now[0] = 120.0  # the process ended: its last value still counts
    metrics.receive(request(counter("airflow.scheduler_heartbeat", 4, start=50, at=60)))
    assert exposed(metrics)[("airflow_scheduler_heartbeat_total", ())] == 14
    metrics.receive(request(counter("airflow.scheduler_heartbeat", 12, start=1, at=130)))
    assert exposed(metrics)[("airflow_scheduler_heartbeat_total", ())] == 16  # not 26


def test_delta_points_add_up() -> None:
    metrics = OtlpMetrics()
    for at in (10, 20, 30):
        metrics.receive(request(counter("jobs", 2, start=at - 10, at=at, temporality=DELTA)))
    assert exposed(metrics)[("jobs_total", ())] == 6


def test_a_gauge_is_its_newest_point_and_a_histogram_its_count_and_sum() -> None:
    metrics = OtlpMetrics()
    metrics.receive(request(gauge("airflow.pool.open_slots", 4, at=20, pool_name="gpu")))
    metrics.receive(request(gauge("airflow.pool.open_slots", 1, at=10, pool_name="gpu")))
    metrics.receive(request(exponential("airflow.dagrun.duration.success", 3, 900.0, 1, 5)))
    metrics.receive(request(exponential("airflow.dagrun.duration.success", 1, 100.0, 2, 6)))
    found = exposed(metrics)
    assert found[("airflow_pool_open_slots", (("pool_name", "gpu"),))] == 4
    assert found[("airflow_dagrun_duration_success_count", ())] == 4
    assert found[("airflow_dagrun_duration_success_sum", ())] == 1000.0


def test_a_name_seen_as_another_kind_and_streams_over_the_limit_are_dropped() -> None:
    metrics = OtlpMetrics(max_streams=2)
    metrics.receive(request(counter("x", 1, start=1, at=2)))
    assert metrics.receive(request(gauge("x_total", 1.0, at=3))) == 1
    metrics.receive(request(counter("y", 1, start=1, at=2)))
    assert metrics.receive(request(counter("z", 1, start=1, at=2))) == 1
    assert metrics.dropped == 2 and "z_total" not in {k[0] for k in exposed(metrics)}
    answer = ExportMetricsServiceResponse.FromString(export_response(1))
    assert answer.partial_success.rejected_data_points == 1


def test_gzip_bodies_are_taken_and_bad_or_oversized_ones_refused() -> None:
    metrics = OtlpMetrics()
    body = request(counter("airflow.ti.start", 1, start=1, at=2))
    metrics.receive(gzip.compress(body), "gzip")
    assert exposed(metrics)[("airflow_ti_start_total", ())] == 1
    with pytest.raises(OtlpRequestError, match="not an OTLP"):
        metrics.receive(b"\xff\xff not protobuf")
    with pytest.raises(OtlpRequestError, match="over"):
        metrics.receive(gzip.compress(b"\0" * (MAX_BODY_BYTES + 10)), "gzip")
    with pytest.raises(OtlpRequestError, match="only gzip"):
        metrics.receive(body, "br")
