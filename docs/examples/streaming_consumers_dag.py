"""A hand-written DAG of Loopline's consumer operators: deploy a pipeline's streaming
consumers on a model version, scale them out by one, then stop them.

The generated ``<pipeline>.stream_deploy`` DAG uses the same operators. Copy this file into
your ``dags/`` folder and point ``SPEC`` at your pipeline's spec. The run-time arguments are
templates, typed when the task runs (a bad value fails the task naming the argument); the
connections are the operators' defaults (``kafka_default``, ``aws_default``, and
``loopline_kubernetes`` for ``streaming.backend: kubernetes``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param
from loopline.airflow.operators import (
    DeployConsumersOperator,
    ScaleConsumersOperator,
    StopConsumersOperator,
)
from loopline.spec import pipelines_folder

# This project's demo pipeline ($LOOPLINE_PIPELINES_DIR overrides the folder).
PIPELINES = pipelines_folder(Path(__file__).resolve().parents[2] / "include" / "pipelines")
SPEC = str(PIPELINES / "card_fraud.yaml")

with DAG(
    dag_id="card_fraud_consumers_by_hand",
    description="Deploy card_fraud's consumers, scale them out by one, stop them",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "model_version": Param("champion", type="string", pattern="^(champion|[0-9]+)$"),
        "replicas": Param(1, type="integer", minimum=1),
    },
    tags=["loopline", "example"],
):
    deploy = DeployConsumersOperator(
        task_id="deploy",
        spec_path=SPEC,
        model_version="{{ params.model_version }}",
        replicas="{{ params.replicas }}",
    )
    scale_out = ScaleConsumersOperator(
        task_id="scale_out", spec_path=SPEC, replicas="{{ params.replicas + 1 }}"
    )
    stop = StopConsumersOperator(task_id="stop", spec_path=SPEC)

    deploy >> scale_out >> stop
