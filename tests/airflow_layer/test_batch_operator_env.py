"""spark-submit's environment and where the S3 credentials may go: an allowlist (Airflow's
secrets stay in the task), and never the command line of a YARN or Kubernetes submission."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from loopline.airflow.operators.batch import BatchScoreOperator

SECRETS = {
    "AIRFLOW__CORE__FERNET_KEY": "fernet-secret",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:pw@db/airflow",
}


def spark_connection(
    monkeypatch: pytest.MonkeyPatch, master: str, deploy_mode: str, **extra: object
) -> None:
    extra = {"deploy-mode": deploy_mode, **extra}
    spark = {"conn_type": "spark", "host": master, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(spark))
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")


def operator(**kwargs: object) -> BatchScoreOperator:
    return BatchScoreOperator(
        task_id="score", spec_path="spec.yaml", window_days=1, model_version="champion", **kwargs
    )


def test_spark_submit_gets_an_allowlisted_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real local spark-submit of an application that writes down its environment."""
    spark_connection(monkeypatch, "local[1]", "client")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    seen = tmp_path / "environment.json"
    app = tmp_path / "dump_environment.py"
    app.write_text(
        "import json, os\n"
        "with open(os.environ['DUMP_TO'], 'w') as f:\n"
        "    json.dump(dict(os.environ), f)\n"
    )
    env_vars = {"LOOPLINE_S3": '{"endpoint_url": null}', "DUMP_TO": str(seen)}
    hook = operator(env_vars=env_vars)._get_hook()

    hook.submit(str(app))

    environment = json.loads(seen.read_text())
    assert not set(SECRETS) & set(environment)
    assert environment["LOOPLINE_S3"] == '{"endpoint_url": null}'  # env_vars still arrive


def test_s3_credentials_are_not_shipped_on_a_yarn_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spark_connection(monkeypatch, "yarn", "cluster")
    with pytest.raises(ValueError, match=r"command line.*loopline-ship-s3-credentials"):
        operator().execute({})  # type: ignore[arg-type]


def test_a_yarn_connection_that_gives_the_cluster_its_own_access_ships_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection (what names the master) turns shipping off: no refusal, and no
    LOOPLINE_S3 in what spark-submit would get."""
    spark_connection(monkeypatch, "yarn", "cluster", **{"loopline-ship-s3-credentials": False})
    task = operator()
    assert not task._connection_ships_credentials()
    spark_connection(monkeypatch, "yarn", "cluster")
    assert task._connection_ships_credentials()
