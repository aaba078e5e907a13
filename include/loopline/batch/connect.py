"""Batch scoring on a warm engine: a Spark Connect server, started once and reached per run.

A ``spark-submit`` run pays the engine's start-up every time (JVM, SparkContext, each Python
worker's TensorFlow import and model load): 13-17 s here, most of a 1M-row run. A Spark
Connect server keeps all of that between runs; the Airflow task is the job's driver and talks
to the server over gRPC.

Python workers on the server are kept per Connect *session*: a run that opens a new session
gets new workers (and loads the model again). So every run of one pipeline and model version
opens the same session (its id derived from the two and the version's file digests), and its
workers still hold the model from the run before, as long as Spark has not stopped them: it
stops Python workers idle for a minute. A new champion means a new session, whose workers
load the new version; an old session expires with the server's idle timeout
(``spark.connect.session.manager.defaultSessionTimeout``). A session the server has already
closed is replaced by a fresh one, which is only colder.

A Connect server runs whatever code a client sends it: the local stack binds it to loopback
and sets a pre-shared token (``SPARK_CONNECT_AUTHENTICATE_TOKEN``); a server others can reach
needs the token and TLS (``use_ssl`` in the connection).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"  # read by the server, never on its command line
CONNECT_MODE_ENV = "SPARK_CONNECT_MODE_ENABLED"  # pyspark's mark of a Connect client process
# The namespace of the warm sessions' ids: uuid5(namespace, "<pipeline>@v<version>#<files>").
_WARM_SESSIONS = uuid.UUID("6f1c8a52-7d0e-4c38-9a57-3f1d2b8e4c10")


class ConnectUnavailable(RuntimeError):
    """The Spark Connect server does not answer (or refuses this client)."""


def server_argv(
    host: str,
    port: int,
    master: str = "local[*,4]",
    python: str = sys.executable,
    extra_conf: dict[str, str] | None = None,
) -> list[str]:
    """The command that runs a Spark Connect server in the foreground, from the pyspark
    install (its jars carry the server): bound to `host`, Python workers on `python`."""
    import pyspark

    from loopline.batch.job import spark_conf

    conf = {
        **spark_conf(python),
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": host,
        "spark.driver.bindAddress": host,
        **(extra_conf or {}),
    }
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    return [
        *(str(spark_submit), "--class", SERVER_CLASS, "--master", master),
        *("--name", "loopline-spark-connect"),
        *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
        "spark-internal",
    ]


def server_env(token: str, python: str = sys.executable) -> dict[str, str]:
    """What the server's process needs besides a plain environment: its token and Python."""
    import pyspark

    return {
        TOKEN_ENV: token,
        "PYSPARK_PYTHON": python,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def client_url(host: str, port: int, token: str | None) -> str:
    """``sc://`` URL of a server. With a token and no TLS, pyspark sends it only over a local
    channel, which it opens for the host name ``localhost`` alone."""
    if host in ("127.0.0.1", "::1"):
        host = "localhost"
    return f"sc://{host}:{port}/" + (f";token={token}" if token else "")


def warm_session_id(pipeline: str, version: int, fingerprint: str = "") -> str:
    """The Connect session every run of `pipeline` version `version` (with the files of
    `fingerprint`: another registry's v1 is another model) opens."""
    return str(uuid.uuid5(_WARM_SESSIONS, f"{pipeline}@v{version}#{fingerprint}"))


def open_session(url: str, session_id: str | None = None, retries: int = 5) -> SparkSession:
    """A session on the server at `url` (the id: a warm session to reuse), checked by one
    round trip; a server that still does not answer after `retries` retries (backing off
    from 50 ms, four times longer each: about 17 s for 5) raises ConnectUnavailable naming
    its endpoint (never its token)."""
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    endpoint = endpoint_of(url)
    full = f"{url.rstrip(';')};session_id={session_id}" if session_id else url
    started = time.monotonic()
    try:
        session = SparkSession.builder.remote(full).create()
        # pyspark retries an unanswered call for 10 minutes; the first one gets `retries`.
        patient = session.client.get_retry_policies()
        session.client.set_retry_policies([DefaultPolicy(max_retries=retries)])
        session.conf.get("spark.master")  # the first call connects
        session.client.set_retry_policies(patient)  # the job's calls: pyspark's own patience
        return session
    except Exception as exc:  # pyspark wraps gRPC errors in its own types
        text = str(exc)
        if session_id and "SESSION_CLOSED" in text:
            return open_session(url, None, retries)  # expired: a cold session instead
        waited = time.monotonic() - started
        raise ConnectUnavailable(
            f"Spark Connect server {endpoint} did not accept a session after {waited:.0f} s: "
            f"{_first_line(text)}. Is it running (`make run` starts the local one)? Is the "
            "connection's token right?"
        ) from None


@contextmanager
def warm_session(
    url: str, pipeline: str, version: int, fingerprint: str = "", retries: int = 5
) -> Iterator[SparkSession]:
    """The warm session of `pipeline` version `version` on the server at `url`, for one run.

    Afterwards only this client's channel closes: the server-side session (and its Python
    workers holding the model) stays for the next run, where ``stop()`` would release it.
    pyspark marks the whole process as a Connect client (``SPARK_CONNECT_MODE_ENABLED``,
    inherited by child processes: a spark-submit driver started later would refuse to run);
    the mark goes with the session, whether it opened or not."""
    marked = os.environ.get(CONNECT_MODE_ENV)
    try:
        session = open_session(url, warm_session_id(pipeline, version, fingerprint), retries)
        try:
            yield session
        finally:
            session.client.close()
    finally:
        if marked is None:
            os.environ.pop(CONNECT_MODE_ENV, None)


def is_connect(session: object) -> bool:
    """Whether `session` is a Spark Connect client session (it has no SparkContext)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def endpoint_of(url: str) -> str:
    """host:port of an ``sc://`` URL, without its parameters (the token)."""
    return url.removeprefix("sc://").split("/", 1)[0].split(";", 1)[0]


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if "details" in line:
            return line.strip()
    return text.strip().splitlines()[0][:300] if text.strip() else "no answer"
