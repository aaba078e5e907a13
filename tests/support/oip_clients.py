"""The Open Inference Protocol clients nobody here wrote (tritonclient HTTP and gRPC, the kserve
SDK's v2 clients), run against a Loopline endpoint from their own virtualenv.

``make oip-clients`` builds it at ``.loopline/tools/oip-clients/`` from
``requirements-oip-clients.lock``: their pins conflict with Airflow's set, and tritonclient's
and kserve's generated ``inference`` stubs cannot be imported in one process, so each client
runs `oip_client_script.py` in a process of its own. Where the virtualenv is missing the tests
that need it skip, like the Prometheus test; CI sets LOOPLINE_TEST_REQUIRE_OIP_CLIENTS=1 to
make them fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.paths import PROJECT_ROOT

VENV = PROJECT_ROOT / ".loopline" / "tools" / "oip-clients"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".loopline-installed"  # written by `make oip-clients` once the install is whole
SCRIPT = Path(__file__).with_name("oip_client_script.py")
HOW_TO_GET = f"run `make oip-clients` (builds {VENV.relative_to(PROJECT_ROOT)})"

HTTP_CLIENTS = ("triton-http-json", "triton-http-binary", "kserve-rest", "kserve-rest-binary")
GRPC_CLIENTS = ("triton-grpc", "kserve-grpc", "kserve-grpc-contents")


def require_oip_clients() -> Path:
    """The virtualenv's python; skips the test where it is missing (fails under CI's
    LOOPLINE_TEST_REQUIRE_OIP_CLIENTS)."""
    if not (PYTHON.exists() and STAMP.exists()):
        message = f"no OIP clients' virtualenv: {HOW_TO_GET}"
        if os.environ.get("LOOPLINE_TEST_REQUIRE_OIP_CLIENTS"):  # CI built it: never skip
            pytest.fail(message)
        pytest.skip(message)
    return PYTHON


def run_client(client: str, url: str, request: dict[str, Any], timeout: float = 120) -> dict:
    """One client's answers (a good request, then one missing its last input), as JSON."""
    python = require_oip_clients()
    # The venv's own environment only: the test process's PYTHONPATH (tests/, include/) would
    # put this project's modules, and Airflow's packages, before the clients' own.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), str(SCRIPT), "--client", client, "--url", url],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{client} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_clients(
    http_url: str | None,
    grpc_url: str | None,
    model: str,
    inputs: dict[str, list[Any]],
    *,
    request_id: str = "oip-clients-1",
    model_version: str | None = None,
    clients: tuple[str, ...] | None = None,
    timeout: float = 120,
) -> dict[str, dict]:
    """Every client (or those named) whose endpoint is given, one process each: their
    answers by client name. `http_url` is ``http://host:port``, `grpc_url` ``host:port``."""
    request: dict[str, Any] = {"model": model, "id": request_id, "inputs": inputs}
    if model_version is not None:
        request["model_version"] = model_version
    chosen = clients or (*(HTTP_CLIENTS if http_url else ()), *(GRPC_CLIENTS if grpc_url else ()))
    answers = {}
    for client in chosen:
        url = http_url if client in HTTP_CLIENTS else grpc_url
        if url is None:
            raise ValueError(
                f"{client} needs {'an HTTP' if client in HTTP_CLIENTS else 'a gRPC'} URL"
            )
        answers[client] = run_client(client, url, request, timeout)
    return answers
