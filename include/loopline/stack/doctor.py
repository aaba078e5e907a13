"""Where `loopline doctor` looks: the local stack's endpoints and credentials when one was
started for the project (its stack.json), else AWS's default chain and what the flags and the
environment say. Read only: unlike `load_config` on a fresh project, nothing is created."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loopline.doctor.services import spark_master, spark_master_from_uri
from loopline.doctor.targets import AirflowTarget, DoctorTargets
from loopline.plan.paths import ProjectPaths
from loopline.runtime.files import state_dir
from loopline.stack.config import ADMIN_USER, S3_ACCESS_KEY, S3_SECRET_KEY, StackConfig, load_config
from loopline.storage.settings import S3Settings

SPARK_CONNECTION_ENV = "AIRFLOW_CONN_SPARK_DEFAULT"
KAFKA_BOOTSTRAP_ENV = "LOOPLINE_KAFKA_BOOTSTRAP"
LOCAL_BROKER = "the local stack"


def doctor_targets(
    project: Path, pipelines: Path, *, bootstrap: str | None, aws: bool, timeout: float
) -> DoctorTargets:
    """`aws`: LOOPLINE_S3_MODE=aws (checked by the CLI), S3 through AWS's default chain."""
    state = state_dir(project)
    config = load_config(project, state) if (state / "stack.json").exists() else None
    s3, s3_source = _s3(config, aws)
    kafka, kafka_source = _kafka(config, bootstrap)
    master, spark_source = _spark_master(project, config)
    return DoctorTargets(
        project=project,
        pipelines=pipelines,
        suite_file=ProjectPaths.beside(pipelines).suite_file,
        s3=s3,
        s3_source=s3_source,
        stack_logs=config.logs_dir if config is not None else None,
        s3_is_local=config is not None and not aws,
        kafka_bootstrap=kafka,
        kafka_source=kafka_source,
        kafka_is_local=kafka_source == LOCAL_BROKER,
        airflow=_airflow(config),
        spark_master=master,
        spark_source=spark_source,
        timeout=timeout,
    )


def _s3(config: StackConfig | None, aws: bool) -> tuple[S3Settings, str]:
    if config is not None and not aws:
        settings = S3Settings(config.s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY)
        return settings, f"the local stack, {config.state_dir / 'stack.json'}"
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = boto3.Session().region_name or "us-east-1"
    why = "LOOPLINE_S3_MODE=aws" if aws else "no local stack here"
    return S3Settings(endpoint, region=region), f"AWS's default chain, {why}"


def _kafka(config: StackConfig | None, bootstrap: str | None) -> tuple[str | None, str]:
    if bootstrap:
        return bootstrap, "--bootstrap"
    if configured := os.environ.get(KAFKA_BOOTSTRAP_ENV):
        return configured, KAFKA_BOOTSTRAP_ENV
    if config is not None:
        return config.kafka_bootstrap, LOCAL_BROKER
    return None, ""


def _airflow(config: StackConfig | None) -> AirflowTarget | None:
    if config is None:
        return None
    return AirflowTarget(config.airflow_url, ADMIN_USER, config.state.admin_password)


def _spark_master(project: Path, config: StackConfig | None) -> tuple[str | None, str]:
    """spark_default's master (or ``sc://`` Spark Connect endpoint): from
    AIRFLOW_CONN_SPARK_DEFAULT (URI or JSON) where set, as Airflow reads it first, else from
    the project's airflow_settings.yaml, its placeholders filled from the local stack."""
    if connection := os.environ.get(SPARK_CONNECTION_ENV, "").strip():
        if connection.startswith("{"):
            fields = json.loads(connection)
            if fields.get("conn_type") == "spark_connect":
                return f"sc://{fields.get('host')}:{fields.get('port')}", SPARK_CONNECTION_ENV
            return spark_master(fields.get("host"), fields.get("port")), SPARK_CONNECTION_ENV
        return spark_master_from_uri(connection), SPARK_CONNECTION_ENV
    settings = project / "airflow_settings.yaml"
    entry = _connection_entry(settings, "spark_default")
    if entry is None:
        return None, f"no spark_default in {settings.name}"
    source = f"spark_default in {settings.name}"
    if entry.get("conn_type") == "spark_connect":
        port = str(entry.get("conn_port") or "")
        if config is not None:
            port = port.replace(
                "${LOOPLINE_SPARK_CONNECT_PORT}", str(config.state.ports["spark_connect"])
            )
        if not port.isdigit():
            return None, f"{source}: its port {port!r} is the local stack's (`make run` picks it)"
        return f"sc://{entry.get('conn_host')}:{port}", source
    return spark_master(entry.get("conn_host"), entry.get("conn_port")), source


def _connection_entry(settings: Path, conn_id: str) -> dict[str, Any] | None:
    import yaml

    try:
        document = yaml.safe_load(settings.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    for entry in (document.get("airflow") or {}).get("connections") or []:
        if isinstance(entry, dict) and entry.get("conn_id") == conn_id:
            return entry
    return None
