"""The Grafana dashboard: the committed JSON is what the code builds, and reads only metrics
that exist."""

from __future__ import annotations

import json

from loopline.streaming.metrics import ReplicaMetrics
from loopline.telemetry.dashboard import (
    AIRFLOW_METRICS,
    DASHBOARD_FILE,
    build_dashboard,
    dashboard_text,
    metric_names,
)
from loopline.telemetry.exporter import SELF_METRICS
from loopline.telemetry.record_metrics import RECORD_METRICS
from support.paths import PROJECT_ROOT


def test_the_committed_dashboard_is_what_the_code_builds() -> None:
    committed = (PROJECT_ROOT / DASHBOARD_FILE).read_text()
    assert committed == dashboard_text(), (
        "docs/grafana/loopline.json is stale: .venv/bin/python -m loopline.telemetry.dashboard"
    )


def test_every_query_reads_a_metric_the_stack_exports() -> None:
    replica = ReplicaMetrics("card_fraud", 0, 1).registry.collect()
    replica_samples = {sample.name for family in replica for sample in family.samples}
    exported = {*RECORD_METRICS, *SELF_METRICS, *replica_samples, *AIRFLOW_METRICS}
    names = metric_names()
    assert names - exported == set()
    # Each source is on the page: records, replicas and Airflow.
    assert names & set(RECORD_METRICS) and names & replica_samples and names & set(AIRFLOW_METRICS)


def test_every_panel_has_a_prometheus_query_with_a_ref_id() -> None:
    panels = [p for p in build_dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(t["refId"] and t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert json.loads(dashboard_text())["uid"] == "loopline"
