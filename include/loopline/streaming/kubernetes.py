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
import time
from dataclasses import dataclass
from typing import Any

from loopline.spec.model import PipelineSpec
from loopline.streaming.deployment import HEALTHY_TIMEOUT, Outcome

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
    metrics_port: int = 0  # 0: no Prometheus endpoint


IMAGE_PIPELINES_DIR = "/opt/airflow/include/pipelines"  # the project's Dockerfile puts specs here


def consumer_image(spec: PipelineSpec, spec_file_name: str, bootstrap: str) -> ConsumerImage:
    """The spec's `streaming.kubernetes` target; `bootstrap`: the brokers as Airflow reaches
    them, used where the target names none of its own."""
    streaming = spec.streaming
    if streaming is None or streaming.kubernetes is None:
        raise ValueError(f"{spec.name}: streaming.backend 'kubernetes' needs streaming.kubernetes")
    target = streaming.kubernetes
    return ConsumerImage(
        image=target.image,
        spec_path=target.spec_path or f"{IMAGE_PIPELINES_DIR}/{spec_file_name}",
        bootstrap=target.bootstrap or bootstrap,
        s3_secret=target.s3_secret,
        namespace=target.namespace,
        cpu=target.cpu,
        memory=target.memory,
        metrics_port=streaming.metrics_port,
    )


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
    if image.metrics_port:
        replica_args += ["--metrics-port", str(image.metrics_port)]
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
        "ports": [{"name": "metrics", "containerPort": image.metrics_port}]
        if image.metrics_port
        else [],
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
                "metadata": {
                    "labels": {**labels, "loopline/model-version": str(version)},
                    "annotations": _scrape_annotations(image.metrics_port),
                },
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_SECONDS,
                    "containers": [container],
                    "volumes": [{"name": "state", "emptyDir": {}}],
                },
            },
        },
    }


def _scrape_annotations(port: int) -> dict[str, str]:
    if not port:
        return {}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}


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

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The StatefulSet as the API server has it (spec and status); None: none yet."""
        path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"
        response = self.client.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return (self.read(namespace, name) or {}).get("status", {})


class KubernetesDeployment:
    """A pipeline's replicas as a StatefulSet. The controller applies the policy the local
    backend applies by hand: it replaces one pod at a time, each ready (the health probe)
    before the next, and restarts dead pods itself. Here: apply, wait for the rollout the way
    ``kubectl rollout status`` does, and put the old version back if it does not finish."""

    def __init__(
        self,
        spec: PipelineSpec,
        image: ConsumerImage,
        applier: KubernetesApplier,
        timeout: float = HEALTHY_TIMEOUT,
        poll_seconds: float = 2.0,
    ) -> None:
        self.spec, self.image, self.applier = spec, image, applier
        self.timeout, self.poll_seconds = timeout, poll_seconds
        self.name = statefulset_name(spec)

    def deploy(self, version: int, replicas: int) -> Outcome:
        return self._apply("deploy", version, replicas)

    def scale(self, version: int, replicas: int) -> Outcome:
        running = self._running_version()
        return self._apply("scale", running if running is not None else version, replicas)

    def stop(self) -> Outcome:
        version = self._running_version()
        if version is None:
            return Outcome("stop", "no_change", [f"no StatefulSet {self.name}"])
        self.applier.apply(render_statefulset(self.spec, self.image, version, 0))
        return Outcome("stop", "done", [f"StatefulSet {self.name}: scaled to 0"], {})

    def replace_dead(self, version: int) -> Outcome:
        return Outcome(
            "replace_dead", "no_change", ["the StatefulSet controller restarts dead pods itself"]
        )

    def replica_count(self) -> int:
        current = self.applier.read(self.image.namespace, self.name)
        return int(current["spec"].get("replicas", 0)) if current else 0

    def heartbeats(self) -> list[dict[str, Any]]:
        return []  # in the pods: their latency is on each pod's metrics endpoint

    def _apply(self, action: str, version: int, replicas: int) -> Outcome:
        before = self._running_version()
        self.applier.apply(render_statefulset(self.spec, self.image, version, replicas))
        outcome = Outcome(action, "done", [f"applied {self.name}: v{version} x{replicas}"])
        if self._rolled_out():
            outcome.steps.append(f"rolled out: {replicas} pod(s) ready on v{version}")
        elif before is not None and before != version:
            self.applier.apply(render_statefulset(self.spec, self.image, before, replicas))
            outcome.verdict = "rolled_back"
            outcome.steps.append(
                f"v{version} not rolled out within {self.timeout:.0f} s; back to v{before}"
            )
        else:
            outcome.verdict = "unhealthy"
            outcome.steps.append(f"not rolled out within {self.timeout:.0f} s")
        outcome.replicas = {slot: version for slot in range(replicas)}
        return outcome

    def _running_version(self) -> int | None:
        current = self.applier.read(self.image.namespace, self.name)
        if current is None:
            return None
        labels = current["spec"]["template"]["metadata"].get("labels", {})
        version = labels.get("loopline/model-version")
        return int(version) if version else None

    def _rolled_out(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            current = self.applier.read(self.image.namespace, self.name) or {}
            if rollout_done(current):
                return True
            time.sleep(self.poll_seconds)
        return False


def rollout_done(statefulset: dict[str, Any]) -> bool:
    """What ``kubectl rollout status`` waits for: the controller saw the latest spec, every
    replica is ready and updated, and the update revision became the current one."""
    meta, spec, status = (statefulset.get(k, {}) for k in ("metadata", "spec", "status"))
    wanted = spec.get("replicas", 0)
    return (
        status.get("observedGeneration", 0) >= meta.get("generation", 1)
        and status.get("readyReplicas", 0) >= wanted
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("currentRevision") == status.get("updateRevision")
    )
