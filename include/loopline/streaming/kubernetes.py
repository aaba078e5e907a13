"""The Kubernetes rendering of a pipeline's replicas: a StatefulSet, applied server-side.

A StatefulSet because its ordinals are stable: pod ``<name>-2`` is always slot 2, so its
static group member id (``<group>-2``) survives restarts and rollouts and its partitions wait
for it instead of moving. Its rolling update replaces one pod at a time and waits for the
readiness probe, which runs ``python -m loopline.streaming.health``: ready means the same as
healthy here (model loaded, partitions assigned, heartbeat fresh). A new model version is a
new argument in the pod template, so a rollout is a patch; scaling is the replica count,
never above the topic's partitions. ``terminationGracePeriodSeconds`` leaves a replica time to
drain (finish the batch, flush, commit) on SIGTERM.

The pods meet the "restricted" Pod Security Standard, so a namespace that enforces it admits
them: they run as a non-root user with no privilege escalation, no capabilities, the runtime's
default seccomp profile and a read-only root file system (the writable paths are two size-capped
emptyDirs: the state folder and /tmp, where the model is downloaded); they mount no
service-account token (a replica never calls the Kubernetes API); their CPU and memory are
limited. A NetworkPolicy beside the StatefulSet lets only the scrapers the spec names reach the
metrics port, and nothing reach anything else.

Applied with one server-side apply request per object (``PATCH`` with
``application/apply-patch+yaml``, field manager ``loopline``) over HTTPS: that is all it needs
from the Kubernetes API, so no client library is added for it. The bearer token never travels
over plain HTTP or unverified TLS, except to a loopback address (``kubectl proxy``, tests).
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from loopline.spec.sections import KubernetesTarget, PipelineSpec, ServeSpec
from loopline.streaming.deployment import HEALTHY_TIMEOUT, Outcome
from loopline.streaming.kafka_settings import ENV as KAFKA_ENV

FIELD_MANAGER = "loopline"
STATE_DIR = "/var/run/loopline"
STATE_SIZE = "64Mi"  # heartbeats and crash records: a few KiB per slot
SCRATCH_DIR = "/tmp"  # TMPDIR: the model is downloaded here, then loaded and deleted
DRAIN_SECONDS = 60
# A serving pod keeps answering this long after it is told to stop, before it closes its
# listeners: the Service's endpoints drop it concurrently with SIGTERM, and until every node's
# proxy has seen that, new connections still arrive (the usual preStop sleep).
UNROUTE_SECONDS = 5
# An exec probe past its timeout (default 1 s) counts as failed; starting Python alone takes
# a good part of a second on a busy node.
PROBE_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class ConsumerImage:
    """What a pipeline's pods run: the spec's target (the project's image, namespace,
    resources, user, scrapers, the S3 Secret) and what it leaves to be settled elsewhere."""

    target: KubernetesTarget
    spec_path: str  # the spec file inside the image
    bootstrap: str  # the brokers as the pods reach them
    metrics_port: int = 0  # 0: no Prometheus endpoint
    serve: ServeSpec | None = None  # online scoring (REST and gRPC) by the same pods


IMAGE_PIPELINES_DIR = "/opt/airflow/include/pipelines"  # the project's Dockerfile puts specs here


def consumer_image(spec: PipelineSpec, spec_file_name: str, bootstrap: str) -> ConsumerImage:
    """The spec's `streaming.kubernetes` target; `bootstrap`: the brokers as Airflow reaches
    them, used where the target names none of its own."""
    streaming = spec.streaming
    if streaming is None or streaming.kubernetes is None:
        raise ValueError(f"{spec.name}: streaming.backend 'kubernetes' needs streaming.kubernetes")
    target = streaming.kubernetes
    return ConsumerImage(
        target=target,
        spec_path=target.spec_path or f"{IMAGE_PIPELINES_DIR}/{spec_file_name}",
        bootstrap=target.bootstrap or bootstrap,
        metrics_port=streaming.metrics_port,
        serve=streaming.serve,
    )


def statefulset_name(spec: PipelineSpec) -> str:
    return f"{spec.name.replace('_', '-')}-scorer"


def pod_labels(spec: PipelineSpec) -> dict[str, str]:
    """What selects a pipeline's pods, for the StatefulSet and its NetworkPolicy."""
    return {"app.kubernetes.io/name": statefulset_name(spec), "loopline/pipeline": spec.name}


def render_statefulset(
    spec: PipelineSpec, image: ConsumerImage, version: int, replicas: int
) -> dict[str, Any]:
    """The StatefulSet running `replicas` replicas of model `version`."""
    streaming = spec.streaming
    if streaming is None:
        raise ValueError(f"{spec.name} has no streaming section")
    name, labels = statefulset_name(spec), pod_labels(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": image.target.namespace, "labels": labels},
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
                "spec": _pod(spec, image, version),
            },
        },
    }


def _pod(spec: PipelineSpec, image: ConsumerImage, version: int) -> dict[str, Any]:
    return {
        "terminationGracePeriodSeconds": DRAIN_SECONDS,
        "automountServiceAccountToken": False,  # a replica never calls the Kubernetes API
        "enableServiceLinks": False,  # no other services' addresses in its environment
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": image.target.run_as_user,
            "runAsGroup": image.target.run_as_group,
            "fsGroup": image.target.run_as_group,  # owns the emptyDirs, so the user can write them
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, image, version)],
        "volumes": [
            {"name": "state", "emptyDir": {"sizeLimit": STATE_SIZE}},
            {"name": "scratch", "emptyDir": {"sizeLimit": image.target.scratch_size}},
        ],
    }


def _container(spec: PipelineSpec, image: ConsumerImage, version: int) -> dict[str, Any]:
    slot = "$(POD_INDEX)"
    replica_args = [
        "--spec", image.spec_path, "--slot", slot, "--version", str(version),
        "--bootstrap", image.bootstrap, "--state-dir", STATE_DIR, "--retire-on-stop",
    ]  # fmt: skip
    if image.metrics_port:  # on the pod's address, for the scrapers its NetworkPolicy admits
        replica_args += ["--metrics-port", str(image.metrics_port), "--metrics-host", "0.0.0.0"]
    if image.serve is not None:  # on the pod's address, behind its Service and policy
        replica_args += ["--serve-host", "0.0.0.0"]
    health = ["python", "-m", "loopline.streaming.health", "--state-dir", STATE_DIR]
    health += ["--pipeline", spec.name, "--slot", slot]
    container: dict[str, Any] = {
        "name": "replica",
        "image": image.target.image,
        "command": ["python", "-m", "loopline.streaming.replica"],
        "args": replica_args,
        "env": _environment(image),
        "readinessProbe": _readiness(image, health),
        # TensorFlow and the model load before the first heartbeat: not a liveness failure.
        # Readiness is probed only once this passed: the consumer runs and the model is in.
        "startupProbe": _probe(health, period=5, failures=60),
        "resources": {
            "requests": {"cpu": image.target.cpu, "memory": image.target.memory},
            "limits": {
                "cpu": image.target.cpu_limit or image.target.cpu,
                "memory": image.target.memory_limit or image.target.memory,
            },
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "ports": [{"name": name, "containerPort": port} for name, port in _ports(image).items()],
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "scratch", "mountPath": SCRATCH_DIR},
        ],
    }
    if image.serve is not None:
        sleep = {"exec": {"command": ["sleep", str(UNROUTE_SECONDS)]}}
        container["lifecycle"] = {"preStop": sleep}
    return container


def _ports(image: ConsumerImage) -> dict[str, int]:
    """The pod's named ports: metrics, and the online endpoint's REST and gRPC."""
    ports = {"metrics": image.metrics_port}
    if image.serve is not None:
        ports |= {"http": image.serve.http_port, "grpc": image.serve.grpc_port}
    return {name: port for name, port in ports.items() if port}


def _readiness(image: ConsumerImage, health: list[str]) -> dict[str, Any]:
    """Ready for traffic: the protocol's own ``/v2/health/ready`` where the pod serves REST
    (a model is loaded), else the consumer's heartbeat."""
    if image.serve is None or not image.serve.http_port:
        return _probe(health, period=10, failures=3)
    http = {"path": "/v2/health/ready", "port": "http"}
    return {"httpGet": http, "timeoutSeconds": 2, "periodSeconds": 5, "failureThreshold": 2}


def _environment(image: ConsumerImage) -> list[dict[str, Any]]:
    """The slot, the S3 settings, and every writable path pointed at the scratch emptyDir:
    the root file system is read-only."""
    pod_index = "metadata.labels['apps.kubernetes.io/pod-index']"
    secret = {"name": image.target.s3_secret, "key": "LOOPLINE_S3"}
    kafka = {"name": image.target.s3_secret, "key": KAFKA_ENV}
    scratch = {
        "TMPDIR": SCRATCH_DIR,  # tempfile: the model's download folder
        "KERAS_HOME": f"{SCRATCH_DIR}/keras",  # keras writes keras.json on import
        "XDG_CACHE_HOME": f"{SCRATCH_DIR}/cache",
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ writes into the image
    }
    return [
        {"name": "POD_INDEX", "valueFrom": {"fieldRef": {"fieldPath": pod_index}}},
        {"name": "LOOPLINE_S3", "valueFrom": {"secretKeyRef": secret}},
        # The Kafka TLS/SASL settings (kafka_settings), from the same Secret where it has
        # them: optional, as a plaintext cluster needs none.
        {"name": KAFKA_ENV, "valueFrom": {"secretKeyRef": {**kafka, "optional": True}}},
        *({"name": key, "value": value} for key, value in scratch.items()),
    ]


def _probe(command: list[str], *, period: int, failures: int) -> dict[str, Any]:
    return {
        "exec": {"command": command},
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def render_network_policy(spec: PipelineSpec, image: ConsumerImage) -> dict[str, Any]:
    """Who may connect to a pipeline's pods: the scrapers the spec names, to the metrics port;
    pods of the same namespace to the online endpoint's ports; nobody else. Egress is left
    open: a replica must reach its brokers, S3 and DNS, whose addresses are the cluster's and
    often outside it, and a wrong egress rule would stop scoring; a cluster that restricts
    egress adds its own policy."""
    labels = pod_labels(spec)
    ingress = []
    if image.metrics_port:
        scrapers = {
            "namespaceSelector": {"matchLabels": image.target.scrape_namespace_labels},
            "podSelector": {"matchLabels": image.target.scrape_pod_labels},
        }  # one entry, so both must match: those pods in those namespaces
        ports = [{"protocol": "TCP", "port": image.metrics_port}]
        ingress.append({"from": [scrapers], "ports": ports})
    online = [{"protocol": "TCP", "port": _ports(image)[n]} for n in ("http", "grpc")
              if n in _ports(image)]  # fmt: skip
    if online:  # the online endpoint: from pods of its own namespace (add a policy for more)
        ingress.append({"from": [{"podSelector": {}}], "ports": online})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": statefulset_name(spec),
            "namespace": image.target.namespace,
            "labels": labels,
        },
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def render_services(spec: PipelineSpec, image: ConsumerImage) -> list[dict[str, Any]]:
    """The StatefulSet's governing headless Service (one DNS record per ready pod: what gRPC
    clients balancing per call, ``dns:///<name>.<namespace>:<port>`` with ``round_robin``,
    resolve) and, where the pods serve online, a ClusterIP Service for everyone else (the
    kernel's proxy spreads connections, so a keep-alive or gRPC client stays on one pod until
    the server's max connection age makes it reconnect)."""
    name, labels, namespace = statefulset_name(spec), pod_labels(spec), image.target.namespace
    ports = [{"name": n, "port": p, "targetPort": n, "protocol": "TCP",
              **({"appProtocol": "kubernetes.io/h2c"} if n == "grpc" else {})}
             for n, p in _ports(image).items()]  # fmt: skip

    def service(service_name: str, headless: bool, kept: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"selector": labels}
        if kept:  # a headless Service needs none
            body["ports"] = kept
        if headless:
            body["clusterIP"] = "None"
        meta = {"name": service_name, "namespace": namespace, "labels": labels}
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body}

    services = [service(name, True, ports)]
    online = [port for port in ports if port["name"] in ("http", "grpc")]
    if online:
        services.append(service(f"{name}-online", False, online))
    return services


def render_disruption_budget(spec: PipelineSpec, image: ConsumerImage) -> dict[str, Any]:
    """At most one pod down at a time for voluntary disruptions (a node drain): the rest keep
    the partitions and the online traffic."""
    labels = pod_labels(spec)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": statefulset_name(spec), "namespace": image.target.namespace,
                     "labels": labels},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }  # fmt: skip


def _scrape_annotations(port: int) -> dict[str, str]:
    if not port:
        return {}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}


class InsecureTransport(ValueError):
    """A Kubernetes API address that would send the bearer token in the clear or unverified."""


def check_transport(api_url: str, ca_file: str | bool) -> None:
    """Refuse http:// and certificate checks turned off (`ca_file` false) for any host but a
    loopback one (``kubectl proxy``, a test server): anyone on the path would get a token
    that can change the cluster's workloads."""
    parts = urlsplit(api_url)
    if _is_loopback(parts.hostname or ""):
        return
    if parts.scheme != "https":
        raise InsecureTransport(
            f"refusing {api_url}: a bearer token goes over https:// only "
            "(plain http only to a loopback address such as kubectl proxy's)"
        )
    if ca_file is False:
        raise InsecureTransport(
            f"refusing ca_file false for {api_url}: without certificate checks the bearer "
            "token goes to whoever answers; set ca_file to the cluster's CA bundle"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The API paths of what Loopline applies: /apis/<apiVersion>/namespaces/<ns>/<plural>/<name>.
PLURALS = {
    "StatefulSet": "statefulsets",
    "NetworkPolicy": "networkpolicies",
    "Service": "services",
    "PodDisruptionBudget": "poddisruptionbudgets",
}


def api_path(manifest: dict[str, Any]) -> str:
    meta, version = manifest["metadata"], manifest["apiVersion"]
    root = "/api/v1" if version == "v1" else f"/apis/{version}"  # the core group's own root
    return f"{root}/namespaces/{meta['namespace']}/{PLURALS[manifest['kind']]}/{meta['name']}"


class KubernetesApplier:
    """Server-side apply of a manifest against the Kubernetes API (`api_url`, a bearer
    token, the cluster's CA bundle)."""

    def __init__(self, api_url: str, token: str, ca_file: str | bool = True) -> None:
        import httpx

        check_transport(api_url, ca_file)
        self.client = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            verify=ca_file,
            timeout=30,
        )

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        response = self.client.patch(
            api_path(manifest),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(manifest),  # JSON is YAML: the apply patch accepts it
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"applying {manifest['kind']} {meta['name']} failed: {response.status_code} "
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
        current = self.applier.read(self.image.target.namespace, self.name)
        return int(current["spec"].get("replicas", 0)) if current else 0

    def heartbeats(self) -> list[dict[str, Any]]:
        return []  # in the pods: their latency is on each pod's metrics endpoint

    def problems(self) -> list[str]:
        # The controller restarts pods and shows CrashLoopBackOff; each pod's crashes gauge
        # (loopline_stream_recent_crashes) names it to the scraper.
        return []

    def _apply(self, action: str, version: int, replicas: int) -> Outcome:
        before = self._running_version()
        # The policy first, so that no pod of this version runs unguarded.
        self.applier.apply(render_network_policy(self.spec, self.image))
        for manifest in [*render_services(self.spec, self.image),
                         render_disruption_budget(self.spec, self.image)]:  # fmt: skip
            self.applier.apply(manifest)
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
        current = self.applier.read(self.image.target.namespace, self.name)
        if current is None:
            return None
        labels = current["spec"]["template"]["metadata"].get("labels", {})
        version = labels.get("loopline/model-version")
        return int(version) if version else None

    def _rolled_out(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            current = self.applier.read(self.image.target.namespace, self.name) or {}
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
