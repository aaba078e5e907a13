"""The Kubernetes rendering of a pipeline's replicas: a StatefulSet, applied server-side.

A StatefulSet because its ordinals are stable: pod ``<name>-2`` is always slot 2, so its
static group member id (``<group>-2``) survives restarts and rollouts and its partitions wait
for it instead of moving. Its rolling update replaces one pod at a time and waits for the
readiness probe, which runs ``python -m loopline.streaming.health``: ready means the same as
healthy here (model loaded, partitions assigned, heartbeat fresh). A new model version is a
new argument in the pod template, so a rollout is a patch; scaling is the replica count,
never above the topic's partitions. ``terminationGracePeriodSeconds`` leaves a replica time to
drain (finish the batch, flush, commit) on SIGTERM.

Applied with one server-side apply request (``PATCH`` with
``application/apply-patch+yaml``, field manager ``loopline``) over plain HTTPS: that is all it
needs from the Kubernetes API, so no client library is added for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loopline.spec.model import PipelineSpec

FIELD_MANAGER = "loopline"
STATE_DIR = "/var/run/loopline"
DRAIN_SECONDS = 60


@dataclass(frozen=True)
class ConsumerImage:
    image: str  # the project's image (Dockerfile): Loopline, its specs and TensorFlow
    spec_path: str  # the spec file inside the image
    bootstrap: str
    s3_secret: str  # a Secret whose key LOOPLINE_S3 holds the S3 settings (JSON)
    namespace: str = "loopline"
    cpu: str = "1"
    memory: str = "2Gi"


def statefulset_name(spec: PipelineSpec) -> str:
    return f"{spec.name.replace('_', '-')}-scorer"


def render_statefulset(
    spec: PipelineSpec, image: ConsumerImage, version: int, replicas: int
) -> dict[str, Any]:
    """The StatefulSet running `replicas` replicas of model `version`."""
    streaming = spec.streaming
    if streaming is None:
        raise ValueError(f"{spec.name} has no streaming section")
    name = statefulset_name(spec)
    labels = {"app.kubernetes.io/name": name, "loopline/pipeline": spec.name}
    slot = "$(POD_INDEX)"
    replica_args = [
        "--spec", image.spec_path, "--slot", slot, "--version", str(version),
        "--bootstrap", image.bootstrap, "--state-dir", STATE_DIR, "--retire-on-stop",
    ]  # fmt: skip
    health_args = ["--state-dir", STATE_DIR, "--pipeline", spec.name, "--slot", slot]
    container = {
        "name": "replica",
        "image": image.image,
        "command": ["python", "-m", "loopline.streaming.replica"],
        "args": replica_args,
        "env": [
            {
                "name": "POD_INDEX",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
                },
            },
            {
                "name": "LOOPLINE_S3",
                "valueFrom": {"secretKeyRef": {"name": image.s3_secret, "key": "LOOPLINE_S3"}},
            },
        ],
        "readinessProbe": {
            "exec": {"command": ["python", "-m", "loopline.streaming.health", *health_args]},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        # TensorFlow and the model load before the first heartbeat: not a liveness failure.
        "startupProbe": {
            "exec": {"command": ["python", "-m", "loopline.streaming.health", *health_args]},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "resources": {"requests": {"cpu": image.cpu, "memory": image.memory}},
        "volumeMounts": [{"name": "state", "mountPath": STATE_DIR}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": image.namespace, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": min(replicas, streaming.partitions),
            "selector": {"matchLabels": labels},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {
                "metadata": {"labels": {**labels, "loopline/model-version": str(version)}},
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_SECONDS,
                    "containers": [container],
                    "volumes": [{"name": "state", "emptyDir": {}}],
                },
            },
        },
    }


class KubernetesApplier:
    """Server-side apply of a manifest against the Kubernetes API (`api_url`, a bearer
    token, the cluster's CA bundle)."""

    def __init__(self, api_url: str, token: str, ca_file: str | bool = True) -> None:
        import httpx

        self.client = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            verify=ca_file,
            timeout=30,
        )

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = f"/apis/apps/v1/namespaces/{meta['namespace']}/statefulsets/{meta['name']}"
        response = self.client.patch(
            path,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(manifest),  # JSON is YAML: the apply patch accepts it
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"applying StatefulSet {meta['name']} failed: {response.status_code} "
                f"{response.text[:500]}"
            )
        return response.json()

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"
        response = self.client.get(path)
        response.raise_for_status()
        return response.json().get("status", {})
