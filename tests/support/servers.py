"""Real servers for tests, each in its own process on a free port.

The test session shares one S3 server and one broker (fixtures in tests/conftest.py); the
benchmarks start their own from here too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from loopline.stack.config import HOST, S3_ACCESS_KEY, S3_SECRET_KEY, free_port, free_ports

__all__ = [
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "KafkaBroker",
    "S3Server",
    "SparkCluster",
    "SparkConnectServer",
]


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    @classmethod
    @contextmanager
    def start(cls, port: int | None = None) -> Iterator[S3Server]:
        port = port or free_port()
        moto = Path(sys.executable).parent / "moto_server"
        process = subprocess.Popen(
            [str(moto), "-H", HOST, "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(f"http://{HOST}:{port}", process)
        try:
            server._wait_until_ready()
            yield server
        finally:
            process.terminate()
            process.wait(timeout=10)

    def cli_environment(self) -> dict[str, str]:
        """What points the `loopline` commands (AWS's default chain) at this server."""
        return {
            "LOOPLINE_S3_MODE": "aws",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name="us-east-1",
        )

    def connection_uri(self) -> str:
        """An Airflow ``aws`` connection pointing at this server, for AIRFLOW_CONN_*."""
        import json

        return json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )

    def reset(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10)

    def _wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("moto_server exited during start-up")
            try:
                self.client().list_buckets()
                return
            except Exception:
                time.sleep(0.2)
        raise TimeoutError(f"S3 server at {self.endpoint} did not answer in {timeout}s")


@dataclass
class KafkaBroker:
    """The Kafka-protocol broker the stack runs (Tansu), in memory, on a free port."""

    bootstrap: str
    process: subprocess.Popen

    @classmethod
    @contextmanager
    def start(cls) -> Iterator[KafkaBroker]:
        from loopline.stack.local import tansu_binary

        port = free_port()
        url = f"tcp://{HOST}:{port}"
        process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        broker = cls(f"{HOST}:{port}", process)
        try:
            broker._wait_until_ready()
            yield broker
        finally:
            process.terminate()
            process.wait(timeout=10)

    def _wait_until_ready(self, timeout: float = 30) -> None:
        import socket

        host, port = self.bootstrap.split(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the Tansu broker exited during start-up")
            with socket.socket() as sock:
                if sock.connect_ex((host, int(port))) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"broker at {self.bootstrap} did not listen in {timeout}s")


@dataclass
class SparkCluster:
    """A Spark standalone cluster on loopback: one master, one worker, from pyspark's jars."""

    master_url: str
    web_url: str
    processes: list[subprocess.Popen]

    @classmethod
    @contextmanager
    def start(cls, work_dir: Path, cores: int = 2, memory: str = "2g") -> Iterator[SparkCluster]:
        import pyspark

        spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        env = {**os.environ, "SPARK_LOCAL_IP": HOST}
        port, web_port, worker_web_port = cls.reserve_ports()
        master_url, web_url = f"spark://{HOST}:{port}", f"http://{HOST}:{web_port}"
        logs = [open(work_dir / name, "wb") for name in ("master.log", "worker.log")]  # noqa: SIM115
        master = [
            *("org.apache.spark.deploy.master.Master", "--host", HOST),
            *("--port", str(port), "--webui-port", str(web_port)),
        ]
        worker = [
            *("org.apache.spark.deploy.worker.Worker", "--host", HOST, "--cores", str(cores)),
            *("--memory", memory, "--webui-port", str(worker_web_port)),
            *("--work-dir", str(work_dir / "work"), master_url),
        ]
        processes: list[subprocess.Popen] = []
        try:
            for arguments, log in zip((master, worker), logs, strict=True):
                processes.append(
                    subprocess.Popen(
                        [str(spark_class), *arguments], env=env, stdout=log, stderr=log
                    )
                )
            cluster = cls(master_url, web_url, processes)
            cluster._wait_for_worker()
            yield cluster
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=30)
            for log in logs:
                log.close()

    @staticmethod
    def reserve_ports() -> tuple[int, int, int]:
        """The master's, its web UI's and the worker's web UI's ports, reserved together:
        picked one after another, a port closed after its pick can be handed out again."""
        master, web, worker_web = free_ports(3)
        return master, web, worker_web

    def state(self) -> dict[str, Any]:
        """The master's own view: workers, running and completed applications."""
        return httpx.get(f"{self.web_url}/json/", timeout=10).json()

    def _wait_for_worker(self, timeout: float = 90) -> None:
        wait_for_worker(self.web_url, self.processes, timeout)


def master_state(web_url: str) -> dict[str, Any] | None:
    """The master's /json/ view, or None while it cannot give one: not listening yet, or
    listening with the handler not attached yet (Jetty then answers its own 404 page)."""
    try:
        response = httpx.get(f"{web_url}/json/", timeout=10)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        state = response.json()
    except ValueError:  # an HTML page with status 200, while the UI starts
        return None
    return state if isinstance(state, dict) else None


def wait_for_worker(web_url: str, processes: list[subprocess.Popen], timeout: float = 90) -> None:
    """Until the master at `web_url` lists a live worker; fails at once if a process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a Spark master or worker exited during start-up")
        state = master_state(web_url)
        if state is not None and state.get("aliveworkers", 0) >= 1:
            return
        time.sleep(0.5)
    raise TimeoutError(f"no Spark worker registered with the master at {web_url} in {timeout}s")


@dataclass
class SparkConnectServer:
    """A Spark Connect server on loopback (local[2,4]), started as the local stack starts its
    own (``loopline.batch.connect``), with a token of its own."""

    port: int
    token: str
    process: subprocess.Popen
    log: Path

    @classmethod
    @contextmanager
    def start(cls, work_dir: Path) -> Iterator[SparkConnectServer]:
        import secrets

        from loopline.batch.connect import server_argv, server_env
        from loopline.runtime.environment import child_environment

        port, token = free_port(), secrets.token_urlsafe(24)
        log = work_dir / "spark-connect.log"
        argv = server_argv(HOST, port, master="local[2,4]")
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv, env=child_environment(server_env(token)), stdout=output, stderr=output
            )
        server = cls(port, token, process, log)
        try:
            server._wait_until_listening()
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)

    @property
    def url(self) -> str:
        from loopline.batch.connect import client_url

        return client_url(HOST, self.port, self.token)

    def connection(self) -> dict[str, Any]:
        """An Airflow ``spark_connect`` connection to this server, as JSON fields."""
        return {
            "conn_type": "spark_connect",
            "host": "localhost",
            "port": self.port,
            "password": self.token,
        }

    def _wait_until_listening(self, timeout: float = 120) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the Spark Connect server exited: {self.log.read_text()[-3000:]}"
                )
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"the Spark Connect server did not listen on {self.port} in {timeout}s")
