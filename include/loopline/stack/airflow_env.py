"""Airflow's configuration for the stack: its environment, metadata database and admin login.

Airflow reads everything from ``AIRFLOW__*`` variables, so every process of the stack (and
every ``airflow`` CLI call) gets the same environment from `airflow_environment`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from loopline.runtime.files import open_private_log
from loopline.stack.config import (
    ADMIN_USER,
    APPROVER_USER,
    AUTH_MANAGERS,
    HOST,
    OUTSIDER_USER,
    VIEWER_USER,
    StackConfig,
    write_secret,
)
from loopline.stack.console import echo


def airflow_environment(config: StackConfig) -> dict[str, str]:
    """The environment of every Airflow process of the stack, CLI commands included."""
    c = config
    # SQLite keeps its 5 s busy timeout on purpose: the api-server waits on it inside its
    # event loop, so a longer timeout stalled every request (65 s seen here), while 5 s
    # fails fast with a 500 that AirflowApi retries. PostgreSQL has neither problem.
    return {
        **os.environ,
        "PATH": f"{c.venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(c.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(c.project_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(c.project_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": c.state.fernet_key,
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGERS[c.state.auth_manager],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer",
        # FAB's login pages are a Flask app: one session key for every process, not a random
        # one each (derived from the JWT secret, which no one outside the stack reads).
        "AIRFLOW__API__SECRET_KEY": hashlib.sha256(
            f"flask:{c.state.jwt_secret}".encode()
        ).hexdigest(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{c.airflow_url}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(c.state.ports["airflow"]),
        "AIRFLOW__API__BASE_URL": c.airflow_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": c.state.jwt_secret,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": c.sql_alchemy_conn,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(c.state.ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(c.state.ports["triggerer_logs"]),
        # Task logs are chmod-ed by Airflow itself (0664/0775 by default), whatever the umask;
        # one user runs every component here, so owner-only is enough.
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        # New spec files show up within half a minute instead of five.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Airflow's metrics over OTLP/HTTP to the stack's exporter (loopline.telemetry),
        # which re-exposes them for Prometheus; new names only (the legacy ones put dag and
        # task ids into the metric name).
        "AIRFLOW__METRICS__OTEL_ON": "True",
        "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{c.telemetry_url}/v1/metrics",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "15000",
        # Lineage: each task's OpenLineage events (loopline.airflow.lineage), one JSON line
        # each, in the state dir; AIRFLOW__OPENLINEAGE__TRANSPORT set outside sends them
        # elsewhere (an http transport to Marquez). Emitted from a thread of the task: the
        # default forks the task process for each event.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": os.environ.get(
            "AIRFLOW__OPENLINEAGE__TRANSPORT", lineage_file_transport(lineage_events(c.state_dir))
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": os.environ.get(
            "AIRFLOW__OPENLINEAGE__NAMESPACE", LINEAGE_NAMESPACE
        ),
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "PYSPARK_PYTHON": str(c.venv_bin / "python"),
        "SPARK_LOCAL_IP": HOST,
        "LOOPLINE_STATE_DIR": str(c.state_dir),
    }


LINEAGE_NAMESPACE = "loopline"  # OpenLineage's namespace of the stack's jobs


def lineage_events(state_dir: Path) -> Path:
    """Where the stack's OpenLineage events go: a file the state dir holds (no folder to make)."""
    return state_dir / "lineage.jsonl"


def lineage_file_transport(path: Path) -> str:
    """``[openlineage] transport``: append every event to `path` as one JSON line."""
    return json.dumps({"type": "file", "log_file_path": str(path), "append": True})


def migrate_metadata_db(config: StackConfig, log: Path) -> None:
    """Run ``airflow db migrate`` once per Airflow version and database."""
    home = config.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".loopline-migrated"
    # A hash of the URL, not the URL: a PostgreSQL URL may hold a password.
    url_hash = hashlib.sha256(config.sql_alchemy_conn.encode()).hexdigest()
    stamp = f"{metadata.version('apache-airflow')} {url_hash}"
    if marker.exists() and marker.read_text() == stamp:
        echo("    up to date")
        return
    echo("    migrating (first run: about a minute)")
    with open_private_log(log) as output:
        subprocess.run(
            [str(config.venv_bin / "airflow"), "db", "migrate"],
            env=airflow_environment(config),
            cwd=config.project_root,
            check=True,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            umask=0o077,  # airflow.db is created here: owner-only
        )
    write_secret(marker, stamp)


# (user, its password in the stack's state, its role) of each login FAB's database gets.
def fab_logins(config: StackConfig) -> list[tuple[str, str, str]]:
    state = config.state
    return [
        (ADMIN_USER, state.admin_password, "Admin"),
        (VIEWER_USER, state.viewer_password, "Viewer"),
        (OUTSIDER_USER, state.viewer_password + "-outsider", "Public"),
        # FAB's User role (trigger, clear, answer HITL), for a spec's promotion.approvers.
        (APPROVER_USER, state.approver_password, "User"),
    ]


def set_up_fab(config: StackConfig, log: Path) -> None:
    """With the FAB auth manager: its tables, the stack's logins with their roles, and read
    access to plugins for the Viewer role (FAB's Viewer lacks it, so the UI would show a
    viewer no Loopline view). Once per database and set of logins (a login added since is
    created, the others left as they are); the api-server reads roles at start."""
    marker = config.airflow_home / ".loopline-fab"
    names = ",".join(user for user, _, _ in fab_logins(config))
    url_hash = hashlib.sha256(f"{config.sql_alchemy_conn} {names}".encode()).hexdigest()
    if marker.exists() and marker.read_text() == url_hash:
        return
    airflow = str(config.venv_bin / "airflow")
    logins = [{"username": user, "password": password, "role": role}
              for user, password, role in fab_logins(config)]  # fmt: skip
    steps: list[tuple[list[str], bytes | None]] = [
        ([airflow, "fab-db", "migrate"], None),
        # Passwords on stdin, not in the command line (where `ps` shows them).
        ([str(config.venv_bin / "python"), "-m", "loopline.airflow.fab_users"],
         json.dumps(logins).encode()),
        ([airflow, "roles", "add-perms", "Viewer", "-r", "Plugins", "-a", "can_read"], None),
    ]  # fmt: skip
    with open_private_log(log) as output:
        for command, given in steps:
            subprocess.run(command, env=airflow_environment(config), cwd=config.project_root,
                           check=True, stdout=output, stderr=subprocess.STDOUT,
                           input=given if given is not None else b"", umask=0o077)  # fmt: skip
    write_secret(marker, url_hash)


def write_admin_login(config: StackConfig) -> None:
    """Pin the admin's and the viewer's passwords: Airflow's simple auth manager would
    generate new ones here."""
    passwords = config.airflow_home / "simple_auth_manager_passwords.json.generated"
    logins = {ADMIN_USER: config.state.admin_password, VIEWER_USER: config.state.viewer_password}
    write_secret(passwords, json.dumps(logins))
