"""Test set-up shared by every tier.

Tests mirror the package and sit in one folder per tier, which gives them their marker:
``unit/`` (pure logic, seconds: no Spark, no TensorFlow training, no Airflow; a real S3 server
at most), ``airflow_layer/`` (DAGs and operators through Airflow), ``integration/`` (real
Spark, real TensorFlow training, the whole stack) and ``gpu/`` (run only where a GPU is
visible). ``make test-fast`` runs ``tests/unit``.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it: a throw-away AIRFLOW_HOME, this project's dags folder, no examples.
Servers are started by fixtures on free ports; no running stack is needed.
"""

from __future__ import annotations

import logging
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

# py4j logs "Closing down clientserver connection" from a finaliser at interpreter exit, after
# pytest has closed its capture streams: a "--- Logging error ---" traceback below the summary.
logging.getLogger("py4j").setLevel(logging.WARNING)

TIERS = {"unit": "unit", "airflow_layer": "airflow", "integration": "integration", "gpu": "gpu"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder); skip GPU tests where no GPU is visible."""
    tests = Path(__file__).parent
    no_gpu = pytest.mark.skip(reason="no GPU visible (nvidia-smi -L lists none)")
    config.stash[COLLECTED_TIERS] = set()
    for item in items:
        tier = TIERS[item.path.relative_to(tests).parts[0]]
        config.stash[COLLECTED_TIERS].add(tier)
        item.add_marker(tier)
        if tier == "gpu" and not gpu_visible():
            item.add_marker(no_gpu)


# The unit tier's promise, checked after every run that collected only it (make test-fast).
NOT_IN_THE_UNIT_TIER = ("airflow", "tensorflow", "keras")
COLLECTED_TIERS = pytest.StashKey[set]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(COLLECTED_TIERS, set()) != {"unit"}:
        return  # other tiers' modules were imported while collecting
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(NOT_IN_THE_UNIT_TIER))
    if loaded:
        print(f"\nthe unit tier imported {loaded}: move those tests to another tier")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def gpu_visible() -> bool:
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


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
