"""A small client for Airflow 3's REST API v2, enough to drive and check the local stack.

Hand-written on httpx (already installed with Airflow) rather than the generated
``apache-airflow-client``: the stack needs five calls and a retry on the brief 500s SQLite's
lock gives the api-server, and the dev tool should not add a dependency for that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}
SERVER_ERROR_RETRIES = 4


class AirflowApiError(RuntimeError):
    pass


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def healthy(self) -> bool:
        """True when the API server answers and the scheduler and dag-processor are healthy."""
        try:
            health = self._client.get("/api/v2/monitor/health").json()
        except (httpx.HTTPError, ValueError):
            return False
        components = ("metadatabase", "scheduler", "dag_processor", "triggerer")
        return all(health.get(c, {}).get("status") == "healthy" for c in components)

    def responds(self) -> bool:
        try:
            return self._client.get("/api/v2/monitor/health").status_code == 200
        except httpx.HTTPError:
            return False

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; log in again on 401, and retry a server error a few times (a
        busy SQLite metadata database answers 500 while another component writes)."""
        for attempt in range(SERVER_ERROR_RETRIES + 1):
            response = self._send(method, path, headers, **kwargs)
            if response.status_code == 401:  # token expired: log in again once
                self._token = None
                response = self._send(method, path, headers, **kwargs)
            if response.status_code < 500 or attempt == SERVER_ERROR_RETRIES:
                return response
            time.sleep(2**attempt)
        return response

    def _send(
        self, method: str, path: str, headers: dict[str, str] | None, **kwargs: Any
    ) -> httpx.Response:
        return self._client.request(
            method, path, headers={**self._auth(), **(headers or {})}, **kwargs
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def upsert(self, collection: str, key: str, body: dict[str, Any]) -> str:
        """POST to `collection`, or PATCH the existing `key` on 409 (as the Astro CLI does)."""
        response = self.request("POST", f"/api/v2/{collection}", json=body)
        if response.status_code == 409:
            self.call("PATCH", f"/api/v2/{collection}/{key}", json=body)
            return "updated"
        if response.status_code >= 400:
            raise AirflowApiError(
                f"POST /api/v2/{collection} ({key}) -> {response.status_code}: {response.text}"
            )
        return "created"

    def dag_ids(self) -> list[str]:
        return [
            d["dag_id"] for d in self.call("GET", "/api/v2/dags", params={"limit": 1000})["dags"]
        ]

    def import_errors(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v2/importErrors")["import_errors"]

    def pending_approvals(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's human-in-the-loop requests nobody has answered yet (Airflow's HITL)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails"
        details = self.call("GET", path)["hitl_details"]
        return [detail for detail in details if not detail["response_received"]]

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf or {}},
        )
        return run["dag_run_id"]

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 300.0,
        while_waiting: Callable[[], None] | None = None,
    ) -> str:
        """The run's end state; `while_waiting` is called on every poll until then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL_RUN_STATES:
                return state
            if while_waiting is not None:
                while_waiting()
            time.sleep(1.0)
        raise TimeoutError(f"run {run_id} of {dag_id} did not finish within {timeout:.0f}s")

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            response = self._client.post(
                "/auth/token", json={"username": self.username, "password": self.password}
            )
            if response.status_code >= 400:
                raise AirflowApiError(f"login as {self.username} failed: {response.status_code}")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}
