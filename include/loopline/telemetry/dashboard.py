"""The Grafana dashboard over the stack's Prometheus, as code (grafana-foundation-sdk).

``python -m loopline.telemetry.dashboard`` writes ``docs/grafana/loopline.json`` (import it
in Grafana with a Prometheus data source); a test checks the committed file is what this
code builds, and that every query names a metric the exporter, the replicas or Airflow
export (and the stack test that Prometheus answers each).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD_FILE = Path("docs/grafana/loopline.json")
# Airflow 3.3.2's OpenTelemetry metrics this dashboard uses, as Prometheus shows them through
# the exporter (each seen arriving from the stack's scheduler, triggerer, dag-processor and
# task processes; the stack test asks Prometheus for every one).
AIRFLOW_METRICS = (
    "airflow_scheduler_heartbeat_total",
    "airflow_triggerer_heartbeat_total",
    "airflow_ti_finish_total",
    "airflow_dagrun_duration_success_sum",
    "airflow_dagrun_duration_success_count",
    "airflow_pool_open_slots",
    "airflow_executor_open_slots",
    "airflow_dag_processing_import_errors",
)
_METRIC_NAME = re.compile(r"\b(?:loopline|airflow)_[a-z0-9_]+")
DATASOURCE_UID = "${datasource}"  # chosen on import: Grafana asks for a Prometheus source


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"


def _q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


ROWS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    (
        "Data quality (validation records)",
        (
            PanelSpec(
                "Validation pass rate",
                "Share of landed files the gate let through (validated whole or split)",
                (
                    _q(
                        "sum by (pipeline) "
                        '(loopline_validation_files_total{verdict=~"validated|split"})'
                        " / sum by (pipeline) (loopline_validation_files_total)",
                        "{{pipeline}}",
                    ),
                ),
                unit="percentunit",
            ),
            PanelSpec(
                "Files by verdict",
                "Landed files judged: validated, split, quarantined",
                (
                    _q(
                        "sum by (pipeline, verdict) (loopline_validation_files_total)",
                        "{{pipeline}} {{verdict}}",
                    ),
                ),
            ),
            PanelSpec(
                "Validation runs by verdict",
                "Runs of <pipeline>.validate: passed or failed",
                (
                    _q(
                        "sum by (pipeline, verdict) (loopline_validation_runs_total)",
                        "{{pipeline}} {{verdict}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Drift and models",
        (
            PanelSpec(
                "Drift score per column (latest audit)",
                "Each column's score in the latest audit that scored; compare to its threshold",
                (_q("loopline_drift_score", "{{pipeline}} {{column}} ({{method}})"),),
            ),
            PanelSpec(
                "Drifted share and audits",
                "Share of features drifted in the latest audit; audits by decision",
                (
                    _q("loopline_drift_drifted_share", "{{pipeline}} drifted share"),
                    _q(
                        "sum by (pipeline, verdict) (loopline_drift_audits_total)",
                        "{{pipeline}} {{verdict}}",
                    ),
                ),
            ),
            PanelSpec(
                "Champion version",
                "The registry's champion, per pipeline",
                (_q("loopline_champion_version", "{{pipeline}}"),),
                kind="stat",
            ),
            PanelSpec(
                "Promotion decisions",
                "Judgements of trained versions: promote or refuse",
                (
                    _q(
                        "sum by (pipeline, verdict) (loopline_promotion_decisions_total)",
                        "{{pipeline}} {{verdict}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Streaming (replicas and the monitor's records)",
        (
            PanelSpec(
                "Predictions per second",
                "Events scored and acknowledged, from each replica's /metrics",
                (
                    _q(
                        "sum by (pipeline) (rate(loopline_stream_predictions_total[5m]))",
                        "{{pipeline}}",
                    ),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Event-to-prediction latency p99",
                "From the replicas' latency histograms",
                (
                    _q(
                        "histogram_quantile(0.99, sum by (le, pipeline) "
                        "(rate(loopline_stream_latency_seconds_bucket[5m])))",
                        "{{pipeline}} p99",
                    ),
                ),
                unit="s",
            ),
            PanelSpec(
                "Lag",
                "Committed lag at the monitor's last decision, and each replica's own",
                (
                    _q("loopline_streaming_lag", "{{pipeline}} group (monitor)"),
                    _q("sum by (pipeline) (loopline_stream_lag)", "{{pipeline}} replicas"),
                ),
            ),
        ),
    ),
    (
        "Airflow (OpenTelemetry metrics through the exporter)",
        (
            PanelSpec(
                "Scheduler and triggerer heartbeats per minute",
                "Zero means the component stopped",
                (
                    _q("rate(airflow_scheduler_heartbeat_total[5m]) * 60", "scheduler"),
                    _q("rate(airflow_triggerer_heartbeat_total[5m]) * 60", "triggerer"),
                ),
            ),
            PanelSpec(
                "Task instances finished (last hour)",
                "By DAG and state",
                (
                    _q(
                        "sum by (dag_id, state) (increase(airflow_ti_finish_total[1h]))",
                        "{{dag_id}} {{state}}",
                    ),
                ),
            ),
            PanelSpec(
                "Mean successful DAG run duration",
                "Over the last hour, per DAG (Airflow reports milliseconds)",
                (
                    _q(
                        "sum by (dag_id) (rate(airflow_dagrun_duration_success_sum[1h]))"
                        " / sum by (dag_id) (rate(airflow_dagrun_duration_success_count[1h]))",
                        "{{dag_id}}",
                    ),
                ),
                unit="ms",
            ),
            PanelSpec(
                "Pool and executor slots",
                "Open slots per pool; the executor's open slots",
                (
                    _q("airflow_pool_open_slots", "pool {{pool_name}}"),
                    _q("airflow_executor_open_slots", "executor"),
                ),
            ),
            PanelSpec(
                "DAG import errors",
                "From the dag-processor",
                (_q("airflow_dag_processing_import_errors", "import errors"),),
                kind="stat",
            ),
        ),
    ),
    (
        "Cost and failures (cost and failure records)",
        (
            PanelSpec(
                "CPU seconds per DAG (last day)",
                "Summed over the cost records of its tasks' tries",
                (
                    _q(
                        "sum by (pipeline, dag_id) (increase(loopline_task_cpu_seconds_total[1d]))",
                        "{{dag_id}}",
                    ),
                ),
                unit="s",
            ),
            PanelSpec(
                "Failed task tries",
                "From the failure records (each has a debug bundle: loopline debug)",
                (
                    _q(
                        "sum by (dag_id, task_id) (loopline_task_failures_total)",
                        "{{dag_id}}.{{task_id}}",
                    ),
                ),
            ),
        ),
    ),
)


def build_dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    dashboard = (
        Dashboard("Loopline")
        .uid("loopline")
        .description("Validation, drift, models, streaming, Airflow and cost: one page")
        .tags(["loopline", "mlops"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for title, panels in ROWS:
        dashboard = dashboard.with_row(Row(title))
        for spec in panels:
            dashboard = dashboard.with_panel(_panel(spec))
    import json

    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(dashboard.build()))
    return encoded


def _panel(spec: PanelSpec) -> Any:
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.builders.stat import Panel as Stat
    from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    panel = Stat() if spec.kind == "stat" else Timeseries()
    panel = (
        panel.title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .span(12 if spec.kind == "timeseries" else 6)
        .height(8)
        .datasource(DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
    )
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(
            Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
        )
    return panel


def dashboard_text() -> str:
    import json

    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


def exprs() -> list[str]:
    return [query.expr for _, panels in ROWS for panel in panels for query in panel.queries]


def metric_names() -> set[str]:
    """Every metric (as Prometheus names its samples) the dashboard's queries read."""
    return {name for expr in exprs() for name in _METRIC_NAME.findall(expr)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the Grafana dashboard's JSON.")
    parser.add_argument("--output", type=Path, default=DASHBOARD_FILE)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(dashboard_text())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
