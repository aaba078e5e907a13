"""Child environments come from an allowlist: Airflow's secrets in the parent never reach a
streaming replica (started for real here, by the local backend) or any other child."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from loopline.runtime.environment import child_environment
from loopline.stack.config import free_port
from loopline.streaming.local_backend import LocalProcessBackend

AIRFLOW_SECRETS = {
    "AIRFLOW__CORE__FERNET_KEY": "fernet-secret",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt-secret",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:pw@db/airflow",
}


def test_only_allowlisted_variables_pass() -> None:
    parent = {
        **AIRFLOW_SECRETS,
        "LOOPLINE_DATABASE_URL": "postgresql://u:pw@db/x",  # LOOPLINE_*, but a secret
        "GITHUB_TOKEN": "ghp_x",
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LC_ALL": "C.UTF-8",
        "LOOPLINE_STATE_DIR": "/state",
        "AWS_SESSION_TOKEN": "tok",
        "OMP_NUM_THREADS": "2",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env = child_environment({"LOOPLINE_S3": "{}", "EXTRA": "chosen by the caller"}, parent)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LC_ALL": "C.UTF-8",
        "LOOPLINE_STATE_DIR": "/state",
        "AWS_SESSION_TOKEN": "tok",
        "OMP_NUM_THREADS": "2",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LOOPLINE_S3": "{}",
        "EXTRA": "chosen by the caller",
    }


def test_a_local_replica_gets_no_airflow_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AIRFLOW_SECRETS.items():
        monkeypatch.setenv(name, value)
    spec = tmp_path / "spec.yaml"
    spec.write_text("not read before the environment is checked\n")
    backend = LocalProcessBackend(
        "card_fraud",
        spec,
        f"127.0.0.1:{free_port()}",  # nobody there: the replica's environment is what counts
        tmp_path,
        s3_json='{"endpoint_url": "http://127.0.0.1:1"}',
        consumer_group="card_fraud-scorer",
        metrics=False,
    )
    backend.start(0, version=1)
    try:
        pid = backend.processes.pid("replica-0")  # the supervisor; the replica inherits it
        assert pid is not None
        env = psutil.Process(pid).environ()
    finally:
        backend.stop(0, retire=True)
    assert not set(AIRFLOW_SECRETS) & set(env)
    assert env["LOOPLINE_S3"] == '{"endpoint_url": "http://127.0.0.1:1"}'
    assert env["PATH"] == os.environ["PATH"]
