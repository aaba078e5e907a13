"""Real servers for tests, each in its own process on a free port."""

from __future__ import annotations

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
from loopline.stack.config import HOST, S3_ACCESS_KEY, S3_SECRET_KEY, free_port


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    @classmethod
    @contextmanager
    def start(cls) -> Iterator[S3Server]:
        port = free_port()
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
