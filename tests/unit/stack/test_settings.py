"""airflow_settings.yaml: placeholders, shape checks and the REST bodies built from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopline.stack.settings import SettingsError, _connection_body, read_settings
from support.paths import PROJECT_ROOT

VALUES = {
    "LOOPLINE_S3_ENDPOINT": "http://127.0.0.1:9999",
    "LOOPLINE_S3_ACCESS_KEY": "key",
    "LOOPLINE_S3_SECRET_KEY": "secret",
    "LOOPLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9998",
    "LOOPLINE_STATE_DIR": "/tmp/state",
    "LOOPLINE_SPARK_CONNECT_PORT": "15999",
    "LOOPLINE_SPARK_CONNECT_TOKEN": "connect-token",
}


def test_project_settings_fill_in_the_stack_endpoints() -> None:
    settings = read_settings(PROJECT_ROOT / "airflow_settings.yaml", VALUES)
    connections = {c["conn_id"]: c for c in settings["connections"]}
    assert set(connections) == {"aws_default", "spark_default", "kafka_default"}
    aws = _connection_body(connections["aws_default"])
    assert json.loads(aws["extra"])["endpoint_url"] == "http://127.0.0.1:9999"
    assert aws["login"] == "key" and aws["password"] == "secret"
    spark = _connection_body(connections["spark_default"])
    assert spark["conn_type"] == "spark_connect" and spark["host"] == "localhost"
    assert spark["port"] == 15999 and spark["password"] == "connect-token"
    assert connections["kafka_default"]["conn_extra"]["bootstrap.servers"] == "127.0.0.1:9998"
    assert {p["pool_name"] for p in settings["pools"]} >= {"gpu"}


def test_unknown_placeholder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text("airflow:\n  variables:\n    - {variable_name: x, variable_value: '${NOPE}'}\n")
    with pytest.raises(SettingsError, match=r"unknown placeholder \$\{NOPE\}"):
        read_settings(path, VALUES)


def test_entry_without_its_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text("airflow:\n  pools:\n    - {pool_slot: 2}\n")
    with pytest.raises(SettingsError, match=r"airflow\.pools\[0\] needs 'pool_name'"):
        read_settings(path, VALUES)
