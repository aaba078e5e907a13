"""Test set-up shared by every tier.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it: a throw-away AIRFLOW_HOME, this project's dags folder, no examples.
Servers are started by fixtures on free ports; no running stack is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = PROJECT_ROOT / "dags"
PIPELINES = PROJECT_ROOT / "include" / "pipelines"

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="loopline-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    }
)
os.environ.pop("LOOPLINE_PIPELINES_DIR", None)

sys.path.insert(0, str(Path(__file__).parent))

from servers import S3Server  # noqa: E402


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible HTTP server (moto) in its own process, on a free port."""
    with S3Server.start() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The session's S3 server, emptied after the test."""
    yield s3_server
    s3_server.reset()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata database (SQLite) under the session's AIRFLOW_HOME."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _AIRFLOW_HOME
