"""Test set-up shared by every tier: the environment, tier markers and the shared servers.

Tests mirror the package and sit in one folder per tier; the folder's name is the tier's
marker (pyproject.toml lists them):

- ``unit/``: pure logic, in seconds; no heavy library, no process, no socket (support.guard
  enforces it). ``make test-fast`` runs it.
- ``component/``: real servers (S3, Kafka broker), processes, Great Expectations, Evidently,
  seconds of CPU; no Airflow, no Spark, no TensorFlow training.
- ``airflow_layer/``: DAGs and operators through Airflow. (Not ``airflow/``: tests/ is on
  sys.path, and a package of that name would shadow Airflow itself.)
- ``integration/``: real Spark, real TensorFlow training, the whole stack.
- ``gpu/``: run only where a GPU is visible.

Helpers live in ``support/`` (imported as ``support.<module>``); this file holds fixtures and
hooks only. Servers are shared: one S3 server and one Kafka broker per test process (with
pytest-xdist, per worker), started on first use on free ports, so no running stack is needed
and one left running by ``make run`` is in nobody's way; one Airflow metadata database,
migrated once per run and copied to each worker.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it: a throw-away AIRFLOW_HOME, this project's dags folder, no examples.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `support`, for this file and every tier

from support import guard
from support.paths import DAGS_FOLDER

if TYPE_CHECKING:  # imported by the fixtures: boto3 and httpx cost the unit tier 0.6 s
    from support.servers import KafkaBroker, S3Server, SparkConnectServer

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

# py4j logs "Closing down clientserver connection" from a finaliser at interpreter exit, after
# pytest has closed its capture streams: a "--- Logging error ---" traceback below the summary.
logging.getLogger("py4j").setLevel(logging.WARNING)

TIERS = ("unit", "component", "airflow_layer", "integration", "gpu")
COLLECTED_TIERS = pytest.StashKey[set]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder); skip GPU tests where no GPU is visible."""
    tests = Path(__file__).parent
    no_gpu = pytest.mark.skip(reason="no GPU visible (nvidia-smi -L lists none)")
    config.stash[COLLECTED_TIERS] = set()
    for item in items:
        tier = item.path.relative_to(tests).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in a tier's folder, {TIERS}")
        config.stash[COLLECTED_TIERS].add(tier)
        item.add_marker(tier)
        if tier == "gpu" and not gpu_visible():
            item.add_marker(no_gpu)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The unit tier's promise, checked once more after a run that collected only it (make
    test-fast): no heavy library loaded at all, whoever imported it."""
    if session.config.stash.get(COLLECTED_TIERS, set()) != {"unit"}:
        return  # other tiers' modules were imported while collecting
    loaded = guard.heavy_libraries_loaded()
    if loaded:
        print(f"\nthe unit tier imported {loaded}: {guard.MOVE_IT}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@functools.cache
def gpu_visible() -> bool:
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's real S3-compatible HTTP server (moto), in its own process."""
    from support.servers import S3Server

    with S3Server.start() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The session's S3 server, emptied after the test."""
    yield s3_server
    s3_server.reset()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """The session's real Kafka-protocol broker (Tansu, in memory), in its own process. It is
    never emptied: each test streams on topics and consumer groups named for it alone."""
    from support.servers import KafkaBroker

    with KafkaBroker.start() as broker:
        yield broker


@pytest.fixture(scope="session")
def spark_connect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkConnectServer]:
    """The session's Spark Connect server (local[2,4]), warm across the tests that use it, as
    the local stack's is across runs."""
    from support.servers import SparkConnectServer

    with SparkConnectServer.start(tmp_path_factory.mktemp("spark-connect")) as server:
        yield server


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised Airflow metadata database (SQLite) under the session's AIRFLOW_HOME.

    Migrated once per run (about 8 s of CPU): under pytest-xdist the first worker to get here
    migrates a template in the run's shared temporary folder, and each worker copies it."""
    database = _AIRFLOW_HOME / "airflow.db"
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: migrate in place
        _migrate(_AIRFLOW_HOME)
        return _AIRFLOW_HOME
    from filelock import FileLock  # pytest-xdist's own dependency

    shared = tmp_path_factory.getbasetemp().parent / "airflow-template"
    with FileLock(str(shared) + ".lock"):
        if not (shared / "migrated").exists():
            shared.mkdir(exist_ok=True)
            _migrate(shared)
            (shared / "migrated").touch()
    shutil.copyfile(shared / "airflow.db", database)
    return _AIRFLOW_HOME


def _migrate(home: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=env)
