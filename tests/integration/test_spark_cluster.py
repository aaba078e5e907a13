"""The batch scoring DAG on a real Spark standalone cluster (master + worker on loopback),
including a Python worker killed in the middle of the job."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psutil
import pyarrow as pa
import pytest
from airflow.dag_processing.dagbag import DagBag
from loopline.data.predictions import committed_partitions
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore
from support.airflow_runs import asset_events
from support.batch_world import SPEC, crown_champion, land_validated, use_connections
from support.paths import DAGS_FOLDER
from support.servers import SparkCluster

pytestmark = pytest.mark.integration

PREDICTIONS = "s3://loopline/card_fraud/predictions"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[SparkCluster]:
    with SparkCluster.start(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


@pytest.fixture
def dag(airflow_db, s3, cluster, monkeypatch: pytest.MonkeyPatch):
    use_connections(monkeypatch, s3, cluster.master_url)
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags["card_fraud.batch_score"]


def test_the_dag_task_scores_on_the_standalone_cluster(dag, s3, cluster) -> None:
    store = ObjectStore(s3.client())
    yesterday = land_validated(store, objects=3, rows=3000)
    version = crown_champion(store)

    run = dag.test(run_conf={"window_days": 2})

    assert run.state == "success"
    [event] = asset_events(PREDICTIONS, run.run_id)
    assert event.extra["spark_master"] == cluster.master_url
    assert event.extra["rows"] == 9000 and event.extra["model_version"] == version
    scored = _committed(store, yesterday)
    assert scored.num_rows == 9000 and set(scored["airflow_run_id"].to_pylist()) == {run.run_id}
    # The master itself saw the application run to the end, on its worker's executors.
    finished = [app["name"] for app in cluster.state()["completedapps"]]
    assert "loopline-batch-score-card_fraud.batch_score" in finished


def test_a_killed_python_worker_is_retried_and_nothing_is_duplicated(dag, s3, cluster) -> None:
    store = ObjectStore(s3.client())
    objects, rows = 8, 40_000
    yesterday = land_validated(store, objects=objects, rows=rows)
    crown_champion(store)
    staging = f"{SPEC.batch_inference.output_prefix}_staging/"
    killer = WorkerKiller(
        lambda: any(True for _ in store.list_keys(SPEC.data.bucket, staging)), cluster
    )
    killer.start()

    try:
        run = dag.test(run_conf={"window_days": 2})
    finally:
        killer.stop()

    assert killer.killed, "no Python worker was running once scoring had started"
    assert run.state == "success"
    [event] = asset_events(PREDICTIONS, run.run_id)
    assert event.extra["retried_tasks"] >= 1
    scored = _committed(store, yesterday)
    ids = scored["transaction_id"].to_pylist()
    assert len(ids) == len(set(ids)) == objects * rows == event.extra["rows"]
    assert not list(store.list_keys(SPEC.data.bucket, staging))


def _committed(store: ObjectStore, day) -> pa.Table:
    output = SPEC.batch_inference.output_prefix
    [partition] = committed_partitions(store, SPEC.data.bucket, output, day.date(), day.date())
    files = partition.files
    return pa.concat_tables([decode(store.get(SPEC.data.bucket, f), "parquet") for f in files])


class WorkerKiller(threading.Thread):
    """Once `started()` is true, SIGKILL every forked PySpark worker of `cluster` (not the
    daemon that forks them), once: the tasks they were running die the way an OOM kill would.
    Only this cluster's: another test's Spark job may be running beside it (xdist), and
    killing its workers left this job with no failed task."""

    def __init__(self, started, cluster: SparkCluster) -> None:
        super().__init__(daemon=True)
        self.started, self.cluster = started, cluster
        self.killed: list[int] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            if self.started():
                workers = python_workers(self.cluster)
                for worker in workers:
                    worker.kill()
                self.killed = [worker.pid for worker in workers]
                if self.killed:
                    return

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def python_workers(cluster: SparkCluster) -> list[psutil.Process]:
    """The forked PySpark workers under the cluster's own processes (its executors')."""
    workers = []
    for process in _descendants(cluster):
        try:
            if _is_daemon(process) and _is_daemon(process.parent()):
                workers.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return workers


def _descendants(cluster: SparkCluster) -> list[psutil.Process]:
    found = []
    for root in cluster.processes:
        try:
            found += psutil.Process(root.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
    return found


def _is_daemon(process: psutil.Process | None) -> bool:
    return process is not None and "pyspark.daemon" in " ".join(process.cmdline() or [])
