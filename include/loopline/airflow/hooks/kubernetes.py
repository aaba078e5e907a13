"""The Kubernetes API as the streaming operators reach it: a connection holding the API
server's URL (host), a bearer token (password) and the cluster's CA bundle (extra
``ca_file``); or ``{"in_cluster": true}`` for Airflow running in the cluster, which reads its
service account's token and CA from the pod. The token goes over verified HTTPS only: an
``http://`` host or ``ca_file: false`` is refused unless the host is loopback (kubectl proxy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesApiHook(BaseHook):
    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "loopline_kubernetes"
    hook_name = "Loopline Kubernetes API"

    def __init__(self, kubernetes_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id

    def applier(self) -> Any:
        from loopline.streaming.kubernetes import InsecureTransport, KubernetesApplier

        connection = self.get_connection(self.kubernetes_conn_id)
        extra = connection.extra_dejson
        if extra.get("in_cluster"):
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            token = (SERVICE_ACCOUNT / "token").read_text().strip()
            return KubernetesApplier(
                f"https://{host}:{port}", token, str(SERVICE_ACCOUNT / "ca.crt")
            )
        if not connection.host or not connection.password:
            raise ValueError(
                f"connection {self.kubernetes_conn_id!r} needs the API server URL as host and "
                'a bearer token as password (or extra {"in_cluster": true})'
            )
        url = connection.host if "://" in connection.host else f"https://{connection.host}"
        if connection.port:
            url = f"{url}:{connection.port}"
        try:
            return KubernetesApplier(url, connection.password, extra.get("ca_file", True))
        except InsecureTransport as exc:  # http:// or ca_file false, to a host not loopback
            raise ValueError(f"connection {self.kubernetes_conn_id!r}: {exc}") from exc
