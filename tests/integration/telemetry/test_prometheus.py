"""A real Prometheus (Debian's 2.42 binary, as `make prometheus` fetches it) scrapes the real
exporter process, which reads records written by the stages' own code on the real S3 server,
re-exposes OTLP metrics sent by the OpenTelemetry SDK's OTLP/HTTP exporter (the one Airflow
uses), and lists a replica's /metrics (the replicas' own ReplicaMetrics) as a file_sd target
from its heartbeat. Prometheus must answer a query for each metric family.

The whole stack's test (tests/integration/test_local_stack.py) asks the stack's Prometheus
for every metric of the Grafana dashboard, Airflow's own included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loopline.drift.scores import ColumnDrift
from loopline.promotion.judge import apply_judgement
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.stack.config import S3_ACCESS_KEY, S3_SECRET_KEY, free_ports
from loopline.storage.settings import S3Settings
from loopline.streaming.health import heartbeat_path
from loopline.streaming.metrics import ReplicaMetrics
from loopline.telemetry.prometheus import (
    HOW_TO_GET,
    prometheus_argv,
    prometheus_binary,
    write_config,
)
from loopline.validation.gate import GateResult
from support.judged_versions import SPEC, empty_registry, judge_as, register
from support.paths import PIPELINES, PROJECT_ROOT

pytestmark = pytest.mark.integration

PIPELINE = SPEC.name


def require_prometheus() -> Path:
    binary = prometheus_binary(PROJECT_ROOT)
    if binary is None:
        message = f"no Prometheus binary: {HOW_TO_GET}"
        if os.environ.get("LOOPLINE_TEST_REQUIRE_PROMETHEUS"):  # CI fetched it: never skip
            pytest.fail(message)
        pytest.skip(message)
    return binary


def write_records(s3, tmp_path: Path) -> None:
    """Records as the stages write them: the gate's, a drift audit's, a judgement and its
    promotion (the registry moves the champion), a scaling decision, a task's cost."""
    registry = empty_registry(s3)
    records = RecordStore(registry.store, SPEC.data.bucket)
    run = RunContext(PIPELINE, "scheduled__1", f"{PIPELINE}.validate", "validate", 1)
    landing = SPEC.data.landing_prefix
    good = GateResult(f"{landing}a.parquet", "validated/a.parquet", True, 100, "0" * 64, [],
                      accepted_rows=100)  # fmt: skip
    bad = GateResult(f"{landing}b.csv", "quarantine/b.csv", False, 5, "1" * 64, ["bad"],
                     accepted_rows=0, rejected_rows=5)  # fmt: skip
    for result in (good, bad):
        records.write(result.record(run, SPEC.data.bucket, landing))
    scores = [ColumnDrift("amount", "Wasserstein distance (normed)", 0.3, "distance", 0.1, True)]
    audit = RunContext(PIPELINE, "audit__1", f"{PIPELINE}.drift_audit", "audit", 1)
    records.write(audit.record(
        RecordStage.DRIFT, "retrain", numbers={"drifted_share": 1.0},
        payload={"verdict": {"features": [s.to_dict() for s in scores]}},
    ))  # fmt: skip
    version = register(registry, tmp_path)
    train = RunContext(PIPELINE, "manual__1", f"{PIPELINE}.train", "judge", 1)
    apply_judgement(registry, SPEC, judge_as(registry, version, 0.95, "manual__1"), train)
    monitor = RunContext(PIPELINE, "scheduled__2", f"{PIPELINE}.stream_monitor", "monitor", 1)
    records.write(monitor.record(
        RecordStage.STREAMING, "no_change", subject="scaling",
        numbers={"total_lag": 12, "p99_stable_ms": 40.0, "current": 1, "desired": 1},
    ))  # fmt: skip
    records.write(monitor.record(
        RecordStage.COST, "success", subject="monitor.try1",
        numbers={"wall_seconds": 2.0, "cpu_seconds": 1.5},
    ))  # fmt: skip


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[ReplicaMetrics]:
    """A replica's metrics server and its heartbeat, as a running replica leaves them."""
    metrics = ReplicaMetrics(PIPELINE, 0, 1)
    metrics.batch(8, ["not_json"], [12.0] * 8)
    server, port = metrics.serve(0)
    beat = heartbeat_path(tmp_path / "streaming", PIPELINE, 0)
    beat.parent.mkdir(parents=True)
    beat.write_text(json.dumps({
        "state": "running", "updated_at": time.time() + 3600,  # fresh for the whole test
        "metrics_url": f"http://127.0.0.1:{port}/metrics",
    }))  # fmt: skip
    yield metrics
    server.shutdown()


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def poll(check, what: str, timeout: float = 60.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({process.returncode})")
        try:
            if result := check():
                return result
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s; last: {last!r}")


def send_otlp(endpoint: str) -> None:
    """What Airflow's processes do: the OTel SDK's periodic reader and OTLP/HTTP exporter."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint), 60_000)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("airflow")
    meter.create_counter("test.ti.finish").add(3, {"state": "success"})
    meter.create_histogram("test.task.duration").record(250.0, {"task_id": "train"})
    meter.create_up_down_counter("test.executor.running_tasks").add(2)
    provider.shutdown()  # exports once more, now: the test need not wait a minute


def query(prometheus: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def test_prometheus_answers_for_records_replicas_and_otlp_metrics(
    s3, tmp_path: Path, replica: ReplicaMetrics
) -> None:
    binary = require_prometheus()
    write_records(s3, tmp_path)
    exporter_port, prometheus_port = free_ports(2)
    settings = S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json()
    exporter = start(
        [sys.executable, "-m", "loopline.telemetry.exporter", "--port", str(exporter_port),
         "--state-dir", str(tmp_path), "--pipelines-dir", str(PIPELINES),
         "--refresh-seconds", "1"],
        tmp_path / "exporter.log", env={**os.environ, "LOOPLINE_S3": settings},
    )  # fmt: skip
    folder = tmp_path / "prometheus"
    config = write_config(folder, f"127.0.0.1:{exporter_port}", every=1)
    address = f"127.0.0.1:{prometheus_port}"
    prometheus = start(prometheus_argv(binary, config, folder / "data", address),
                       tmp_path / "prometheus.log")  # fmt: skip
    url = f"http://{address}"
    started = time.monotonic()
    try:
        exporter_url = f"http://127.0.0.1:{exporter_port}"
        poll(lambda: httpx.get(f"{exporter_url}/metrics").status_code == 200, "the exporter",
             process=exporter)  # fmt: skip
        send_otlp(f"{exporter_url}/v1/metrics")
        poll(
            lambda: httpx.get(f"{url}/-/ready").status_code == 200, "Prometheus", process=prometheus
        )

        expected = {
            'loopline_validation_files_total{verdict="quarantined"}': 1,
            'loopline_validation_files_total{verdict="validated"}': 1,
            'loopline_validation_rows_total{outcome="rejected"}': 5,
            'loopline_drift_score{column="amount"}': 0.3,
            "loopline_drift_drifted_share": 1,
            'loopline_promotion_decisions_total{verdict="promote"}': 1,
            'loopline_alias_moves_total{verdict="champion"}': 1,
            "loopline_champion_version": 1,
            "loopline_streaming_lag": 12,
            'loopline_streaming_p99_latency_seconds{window="60s"}': 0.04,
            'loopline_task_cpu_seconds_total{task_id="monitor"}': 1.5,
            # the replica's own metrics, scraped from the target its heartbeat names
            'loopline_stream_predictions_total{job="replicas",slot="0"}': 8,
            'loopline_stream_dead_letters_total{reason="not_json"}': 1,
            'loopline_stream_latency_seconds_count{pipeline="card_fraud"}': 8,
            # OTLP, through the exporter
            'test_ti_finish_total{state="success"}': 3,
            'test_task_duration_count{task_id="train"}': 1,
            'test_task_duration_sum{task_id="train"}': 250,
            "test_executor_running_tasks": 2,
        }

        def answered() -> dict[str, float]:
            found = {}
            for expr in expected:
                result = query(url, expr)
                if len(result) != 1:
                    return {}
                found[expr] = float(result[0]["value"][1])
            return found

        found = poll(answered, "every metric family in Prometheus", timeout=90)
        print(f"all families answered {time.monotonic() - started:.1f} s after the start")
        assert found == pytest.approx(expected)
        [target] = [t for t in httpx.get(f"{url}/api/v1/targets").json()["data"]["activeTargets"]
                    if t["labels"]["job"] == "replicas"]  # fmt: skip
        assert target["health"] == "up" and target["labels"]["pipeline"] == PIPELINE
    finally:
        for process in (prometheus, exporter):
            process.terminate()
            process.wait(timeout=20)
    assert "Traceback" not in (tmp_path / "exporter.log").read_text()
