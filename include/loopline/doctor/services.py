"""Reachability and credentials of the services the loop talks to: S3, the Kafka broker,
Airflow's API and a Spark standalone master. Each check makes one short call with a timeout
and tells "unreachable" apart from "credentials refused"."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from loopline.doctor.results import CheckResult, ok, problem, skipped
from loopline.doctor.targets import DoctorTargets

if TYPE_CHECKING:
    from botocore.client import BaseClient

# S3's answers to a key it does not know or a signature made with the wrong secret; a valid
# key without ListBuckets permission gets AccessDenied instead, which is not refused credentials.
REFUSED_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
SPARK_MASTER_PORT = 7077


def s3_client(targets: DoctorTargets) -> BaseClient:
    """A client with the targets' settings, one attempt and short timeouts: a doctor that
    retries an unreachable endpoint for minutes helps nobody."""
    from botocore.config import Config

    return targets.s3.boto3_client(
        Config(
            connect_timeout=targets.timeout,
            read_timeout=targets.timeout,
            retries={"max_attempts": 1, "mode": "standard"},
        )
    )


def s3_error_code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def check_s3(targets: DoctorTargets, client: BaseClient) -> CheckResult:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    endpoint = targets.s3.endpoint_url or "AWS S3"
    where = f"{endpoint} ({targets.s3_source})"
    try:
        buckets = client.list_buckets().get("Buckets", [])
    except NoCredentialsError:
        return problem(
            "s3",
            f"no S3 credentials found for {where}",
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (AWS's default chain)",
        )
    except ClientError as exc:
        code = s3_error_code(exc)
        if code in REFUSED_CREDENTIALS:
            return problem(
                "s3", f"credentials refused by {where}: {code}", _credentials_fix(targets)
            )
        if code == "AccessDenied":  # the key is good; listing every bucket is not allowed
            return ok("s3", f"{where} reachable, credentials accepted (ListBuckets denied)")
        return problem("s3", f"{where} answered {code or exc}", _credentials_fix(targets))
    except BotoCoreError as exc:
        return problem(
            "s3",
            f"{where} unreachable: {exc}",
            _unreachable_s3_fix(targets),
        )
    return ok("s3", f"{where} reachable, credentials accepted ({len(buckets)} buckets)")


def _unreachable_s3_fix(targets: DoctorTargets) -> str:
    if targets.s3_is_local:
        return targets.stack_fix("s3")
    if targets.s3.endpoint_url:
        return f"check that an S3 server answers at {targets.s3.endpoint_url} (AWS_ENDPOINT_URL)"
    return "check the network to AWS S3 and AWS_REGION"


def _credentials_fix(targets: DoctorTargets) -> str:
    if targets.s3_is_local:
        return (
            "the local stack's S3 takes only its own key (stack/config.py): make stop && make "
            "run restarts it; if another server holds its port, stop that one"
        )
    return (
        "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or AWS_PROFILE "
        "(`aws sts get-caller-identity` shows whose they are)"
    )


def kafka_admin(targets: DoctorTargets) -> Any:
    """An admin client that gives up after the targets' timeout (kafka-python: 30 s)."""
    from kafka.admin import KafkaAdminClient

    from loopline.streaming.kafka_settings import client_settings

    milliseconds = int(targets.timeout * 1000)
    return KafkaAdminClient(
        bootstrap_servers=targets.kafka_bootstrap,
        client_id="loopline-doctor",
        bootstrap_timeout_ms=milliseconds,
        request_timeout_ms=milliseconds,
        **client_settings(),
    )


def check_kafka(targets: DoctorTargets) -> tuple[CheckResult, set[str] | None]:
    """The broker's check and, when it answered, its topics (for the specs' topic checks)."""
    if not targets.kafka_bootstrap:
        return problem(
            "kafka",
            "no broker known: no local stack here and no --bootstrap or LOOPLINE_KAFKA_BOOTSTRAP",
            "make run (starts the local broker), or give --bootstrap host:port",
        ), None
    where = f"{targets.kafka_bootstrap} ({targets.kafka_source})"
    try:
        admin = kafka_admin(targets)
    except Exception as exc:  # kafka-python raises many kinds; each is this broker's problem
        return _kafka_problem(targets, where, exc), None
    try:
        topics = set(admin.list_topics())
    except Exception as exc:
        return _kafka_problem(targets, where, exc), None
    finally:
        admin.close()
    return ok("kafka", f"broker {where} answers ({len(topics)} topics)"), topics


def _kafka_problem(targets: DoctorTargets, where: str, exc: Exception) -> CheckResult:
    kind = type(exc).__name__
    message = str(exc) if str(exc).startswith(kind) else f"{kind}: {exc}"
    if "Authentication" in kind or "Authorization" in kind:
        return problem(
            "kafka",
            f"credentials refused by broker {where}: {message}",
            "check the kafka_default connection's sasl.* / ssl.* extra "
            "(LOOPLINE_KAFKA_SECURITY for the commands)",
        )
    return problem(
        "kafka",
        f"broker {where} unreachable: {message}",
        targets.stack_fix("kafka")
        if targets.kafka_is_local
        else f"start the broker at {targets.kafka_bootstrap}, or give the right --bootstrap",
    )


def check_airflow(targets: DoctorTargets) -> CheckResult:
    """The API answers, its components are healthy, and (where known) the login works."""
    if targets.airflow is None:
        return skipped("airflow", "no local stack here: Airflow's address is unknown")
    import httpx

    api = targets.airflow
    fix = (
        targets.stack_fix("airflow-api-server")
        if targets.local_stack
        else f"check that Airflow's API runs at {api.url}"
    )
    try:
        with httpx.Client(base_url=api.url, timeout=targets.timeout) as client:
            response = client.get("/api/v2/monitor/health")
            if response.status_code != 200:
                return problem(
                    "airflow", f"{api.url}/api/v2/monitor/health -> {response.status_code}", fix
                )
            unhealthy = unhealthy_components(response.json())
            login = _login_status(client, api.username, api.password)
    except (httpx.HTTPError, ValueError) as exc:
        return problem("airflow", f"{api.url} unreachable: {type(exc).__name__}: {exc}", fix)
    if login in (401, 403):
        return problem(
            "airflow",
            f"credentials refused by {api.url}: login as {api.username} -> {login}",
            "make stop && make run (sets the admin password kept in .loopline/stack.json)"
            if targets.local_stack
            else "check the Airflow user and password",
        )
    if unhealthy:
        first = unhealthy[0].split(":")[0]
        log = "airflow-api-server" if first == "metadatabase" else f"airflow-{first}"
        return problem(
            "airflow",
            f"{api.url} answers, but not healthy: {', '.join(unhealthy)}",
            targets.stack_fix(log.replace("_", "-"), "make stop && make run (restarts Airflow")
            if targets.local_stack
            else f"restart Airflow's {first}",
        )
    logged_in = f", login as {api.username} accepted" if login else ""
    return ok(
        "airflow",
        f"{api.url} healthy (metadatabase, scheduler, dag-processor, triggerer){logged_in}",
    )


def unhealthy_components(health: dict[str, Any]) -> list[str]:
    """`component: status` for each component the health endpoint does not call healthy."""
    components = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    states = {c: (health.get(c) or {}).get("status") for c in components}
    return [f"{c}: {state or 'not reported'}" for c, state in states.items() if state != "healthy"]


def _login_status(client: Any, username: str | None, password: str | None) -> int | None:
    """The status of a login with these credentials (None: none to try)."""
    if not username or password is None:
        return None
    response = client.post("/auth/token", json={"username": username, "password": password})
    return int(response.status_code)


def spark_master(host: str | None, port: int | None) -> str | None:
    """The master the Spark provider builds from a connection: ``host:port``, else host."""
    if not host:
        return None
    return f"{host}:{port}" if port else host


def spark_master_from_uri(uri: str) -> str | None:
    """The master of an ``AIRFLOW_CONN_SPARK_DEFAULT`` URI (`spark://spark%3A%2F%2Fh:7077`
    and `spark://h:7077` both name ``spark://h:7077``; JSON connections are read by the
    caller)."""
    parts = urlsplit(uri)
    host = unquote(parts.hostname or "") if parts.hostname else ""
    if "%3a" in parts.netloc.lower():  # Airflow's way to put a scheme in the host
        host = unquote(parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0])
    elif parts.scheme == "spark" and host and not host.startswith(("local", "yarn")):
        host = f"spark://{host}"
    return spark_master(host, parts.port)


def standalone_endpoints(master: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a ``spark://h1:p1,h2:p2`` master (HA lists several)."""
    if not master.startswith("spark://"):
        return []
    endpoints = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.strip().rstrip("/").partition(":")
        endpoints.append((host, int(port) if port.isdigit() else SPARK_MASTER_PORT))
    return endpoints


def check_spark_master(targets: DoctorTargets) -> CheckResult:
    master, source = targets.spark_master, targets.spark_source
    if not master:
        return skipped("spark", f"no spark_default master found ({source})")
    if master.startswith("local"):
        return skipped("spark", f"master {master} ({source}) runs in the task's process")
    if master.startswith("sc://"):
        return _check_spark_connect(targets, master, source)
    endpoints = standalone_endpoints(master)
    if not endpoints:
        return skipped("spark", f"master {master} ({source}): only spark:// masters are checked")
    failures = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=targets.timeout):
                return ok(
                    "spark", f"master {master} ({source}) accepts connections at {host}:{port}"
                )
        except OSError as exc:
            failures.append(f"{host}:{port}: {exc.strerror or exc}")
    return problem(
        "spark",
        f"master {master} ({source}) unreachable: {'; '.join(failures)}",
        "start the Spark master (sbin/start-master.sh) or point spark_default at a running one "
        "(local[*] runs Spark inside the task)",
    )


def _check_spark_connect(targets: DoctorTargets, endpoint: str, source: str) -> CheckResult:
    """A Spark Connect server (batch scoring's warm engine) accepts connections."""
    host, _, port = endpoint.removeprefix("sc://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=targets.timeout):
            return ok("spark", f"Spark Connect server {endpoint} ({source}) accepts connections")
    except (OSError, ValueError) as exc:
        failure = getattr(exc, "strerror", None) or exc
    if targets.local_stack:
        fix = targets.stack_fix("spark-connect", "make run (starts the Spark Connect server")
    else:
        fix = "start the Spark Connect server (or point spark_default at a running one)"
    return problem(
        "spark", f"Spark Connect server {endpoint} ({source}) unreachable: {failure}", fix
    )
