"""Where the local stack keeps its state, which ports it uses, and its generated secrets."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.runtime.files import state_dir as default_state_dir
from loopline.runtime.files import write_atomically

if TYPE_CHECKING:
    from botocore.client import BaseClient

# The log servers of the scheduler's workers and of the triggerer need ports too; two stacks
# (or another Airflow) on one machine must not share them.
DEFAULT_PORTS = {
    "airflow": 8080,
    "s3": 9000,
    "kafka": 9092,
    "worker_logs": 8793,
    "triggerer_logs": 8794,
    # Loopline's own metrics and the OTLP receiver of Airflow's (loopline.telemetry), and
    # the Prometheus that scrapes them with the replicas.
    "telemetry": 9469,
    "prometheus": 9090,
    # The warm engine batch scoring runs on (loopline.batch.connect): Spark Connect's own.
    "spark_connect": 15002,
}
PORT_ENV = {name: f"LOOPLINE_{name.upper()}_PORT" for name in DEFAULT_PORTS}
HOST = "127.0.0.1"
ADMIN_USER = "admin"
# A read-only login (Airflow's "viewer" role): sees every DAG, run and the Loopline view,
# triggers, approves and rolls back nothing.
VIEWER_USER = "viewer"
# With the FAB auth manager, a login of Airflow's "Public" role: it may read no DAG, so it sees
# no pipeline in the Loopline view (and gets 403 for one by name).
OUTSIDER_USER = "outsider"
# With the FAB auth manager, a login of the "User" role, to name in a spec's promotion.approvers.
APPROVER_USER = "approver"
AUTH_MANAGERS = {
    "simple": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "fab": "loopline.airflow.auth.FabAuthManager",  # FAB's, approvers by user name
}
S3_ACCESS_KEY = "loopline"
S3_SECRET_KEY = "loopline-local-secret"


@dataclass(frozen=True)
class StackState:
    """What must stay the same across restarts: ports and secrets, kept in stack.json."""

    ports: dict[str, int]
    admin_password: str
    jwt_secret: str
    fernet_key: str
    database_url: str | None = None  # None: SQLite under the state folder
    spark_connect_token: str = ""  # the Spark Connect server's pre-shared token
    viewer_password: str = ""  # VIEWER_USER's
    approver_password: str = ""  # APPROVER_USER's (FAB only)
    auth_manager: str = "simple"  # Airflow's simple one, or "fab" (users and roles in the DB)


@dataclass(frozen=True)
class StackConfig:
    project_root: Path
    state_dir: Path
    state: StackState

    @property
    def venv_bin(self) -> Path:
        return Path(sys.executable).parent

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def s3_snapshot_dir(self) -> Path:
        return self.state_dir / "s3"

    @property
    def s3_snapshot_seconds(self) -> float:
        """How often changed S3 objects are copied to `s3_snapshot_dir`: the loss window."""
        seconds = float(os.environ.get("LOOPLINE_S3_SNAPSHOT_SECONDS") or 10)
        if seconds <= 0:
            raise ValueError(f"LOOPLINE_S3_SNAPSHOT_SECONDS must be positive, not {seconds}")
        return seconds

    @property
    def airflow_url(self) -> str:
        return f"http://{HOST}:{self.state.ports['airflow']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.state.ports['s3']}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.state.ports['kafka']}"

    @property
    def telemetry_url(self) -> str:
        """The exporter: /metrics for Prometheus, /v1/metrics for Airflow's OTLP metrics."""
        return f"http://{HOST}:{self.state.ports['telemetry']}"

    @property
    def spark_connect_address(self) -> str:
        return f"sc://localhost:{self.state.ports['spark_connect']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.state.ports['prometheus']}"

    @property
    def prometheus_dir(self) -> Path:
        return self.state_dir / "prometheus"

    @property
    def sql_alchemy_conn(self) -> str:
        return self.state.database_url or f"sqlite:///{self.airflow_home / 'airflow.db'}"

    def placeholders(self) -> dict[str, str]:
        """Values that airflow_settings.yaml may refer to as ``${NAME}``."""
        return {
            "LOOPLINE_S3_ENDPOINT": self.s3_endpoint,
            "LOOPLINE_S3_ACCESS_KEY": S3_ACCESS_KEY,
            "LOOPLINE_S3_SECRET_KEY": S3_SECRET_KEY,
            "LOOPLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "LOOPLINE_STATE_DIR": str(self.state_dir),
            "LOOPLINE_SPARK_CONNECT_PORT": str(self.state.ports["spark_connect"]),
            "LOOPLINE_SPARK_CONNECT_TOKEN": self.state.spark_connect_token,
        }


def stack_s3_client(endpoint: str, **client_config: Any) -> BaseClient:
    """A boto3 client for the local stack's S3 server; `client_config`: botocore Config."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
        config=Config(**client_config) if client_config else None,
    )


def load_config(project_root: Path, state_dir: Path | None = None) -> StackConfig:
    """Read (or create on first use) the stack's state under `state_dir`."""
    project_root = project_root.resolve()
    state_dir = (state_dir or default_state_dir(project_root)).resolve()
    # Owner-only: it holds stack.json, airflow.db, logs (task logs included) and the S3
    # snapshot; a folder from an older version (0755) is closed too.
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir.chmod(0o700)
    state_file = state_dir / "stack.json"
    if state_file.exists():
        state_file.chmod(0o600)  # written 0644 by versions before this one
        state = StackState(**json.loads(state_file.read_text()))
        missing = set(DEFAULT_PORTS) - set(state.ports)
        if missing:  # a state folder from an older version: pick the new ports once
            chosen = _choose_ports()
            state = replace(state, ports={**state.ports, **{p: chosen[p] for p in missing}})
            write_secret(state_file, json.dumps(asdict(state), indent=2))
        if not state.spark_connect_token:  # a state folder from before the Connect server
            state = replace(state, spark_connect_token=secrets.token_urlsafe(24))
            write_secret(state_file, json.dumps(asdict(state), indent=2))
        if not state.viewer_password:  # a state folder from before the viewer login
            state = replace(state, viewer_password=secrets.token_urlsafe(12))
            write_secret(state_file, json.dumps(asdict(state), indent=2))
        if not state.approver_password:  # ...or before the approver login
            state = replace(state, approver_password=secrets.token_urlsafe(12))
            write_secret(state_file, json.dumps(asdict(state), indent=2))
    else:
        state = StackState(
            ports=_choose_ports(),
            admin_password=secrets.token_urlsafe(12),
            jwt_secret=secrets.token_urlsafe(32),
            fernet_key=_fernet_key(),
            # PostgreSQL when configured (e.g. postgresql+psycopg2://user@host/db); kept so
            # later runs use the same database without the variable.
            database_url=os.environ.get("LOOPLINE_DATABASE_URL") or None,
            auth_manager=_auth_manager(os.environ.get("LOOPLINE_AUTH_MANAGER") or "simple"),
            spark_connect_token=secrets.token_urlsafe(24),
            viewer_password=secrets.token_urlsafe(12),
            approver_password=secrets.token_urlsafe(12),
        )
        write_secret(state_file, json.dumps(asdict(state), indent=2))
    return StackConfig(project_root, state_dir, state)


def _choose_ports() -> dict[str, int]:
    """Ports from the environment, else the defaults, else a free one: chosen once, kept."""
    wanted = {
        name: int(os.environ[PORT_ENV[name]])
        for name in DEFAULT_PORTS
        if os.environ.get(PORT_ENV[name])
    }
    ports: dict[str, int] = {}
    spare = iter(free_ports(2 * len(DEFAULT_PORTS)))
    for name, default in DEFAULT_PORTS.items():
        taken = {*ports.values(), *wanted.values()}
        if name in wanted:
            ports[name] = wanted[name]
        elif port_is_free(default) and default not in taken:
            ports[name] = default
        else:
            ports[name] = next(port for port in spare if port not in taken)
    return ports


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are chosen (ports
    picked one after another can come back the same)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def write_secret(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (0600), atomically: the file holds secrets."""
    write_atomically(path, text.encode(), private=True)


def _auth_manager(name: str) -> str:
    if name not in AUTH_MANAGERS:
        raise ValueError(
            f"LOOPLINE_AUTH_MANAGER must be one of {sorted(AUTH_MANAGERS)}, not {name!r}"
        )
    return name
