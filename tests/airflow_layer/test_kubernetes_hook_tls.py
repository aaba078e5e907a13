"""The Kubernetes connection never sends its bearer token in the clear or unverified (security
review section 5): an http:// host or ca_file false is refused, naming the connection, unless
the host is loopback (kubectl proxy)."""

from __future__ import annotations

import json

import pytest
from loopline.airflow.hooks import KubernetesApiHook


def use_connection(monkeypatch: pytest.MonkeyPatch, host: str, **extra: object) -> None:
    connection = {"conn_type": "generic", "host": host, "password": "s3cret", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_KUBERNETES", json.dumps(connection))


@pytest.mark.parametrize(
    ("host", "extra", "reason"),
    [
        ("http://k8s.example:6443", {}, "refusing http://k8s.example:6443: a bearer token goes "),
        ("k8s.example", {"ca_file": False}, "refusing ca_file false for https://k8s.example"),
    ],
)
def test_a_connection_that_would_leak_the_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str, extra: dict, reason: str
) -> None:
    use_connection(monkeypatch, host, **extra)
    with pytest.raises(ValueError) as caught:
        KubernetesApiHook().applier()
    assert str(caught.value).startswith(f"connection 'loopline_kubernetes': {reason}")


def test_kubectl_proxy_on_loopback_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, "http://127.0.0.1:8001")
    applier = KubernetesApiHook().applier()
    assert str(applier.client.base_url) == "http://127.0.0.1:8001"
