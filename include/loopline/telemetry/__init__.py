"""Telemetry stored centrally: Loopline's records as Prometheus metrics, Airflow's OTLP
metrics re-exposed for Prometheus, the Prometheus the local stack runs, and the Grafana
dashboard over them.

A dev-tool layer beside ``stack`` (it reads records, the registry and the replicas'
heartbeats, and the stack starts it): no stage imports it.
"""
