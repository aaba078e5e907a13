"""The Kubernetes rendering of the replicas applied server-side against a fake API server (a
real HTTP server on loopback), and the health probe run as the pods run it, in its own
process. The rendering itself is unit-tested (tests/unit/streaming/test_kubernetes.py)."""

from __future__ import annotations

import json
import threading
from http.server import HTTPServer
from pathlib import Path

import pytest
from loopline.spec.sections import KubernetesTarget
from loopline.streaming.kubernetes import (
    KubernetesApplier,
    KubernetesDeployment,
    consumer_image,
    render_statefulset,
)
from support.fake_kubernetes import FakeStatefulSetController, JsonApi, fake_statefulset_controller
from support.kubernetes_target import IMAGE, SPEC


class FakeKubernetes(JsonApi):
    requests: list = []

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeKubernetes.requests.append(
            (self.path, self.headers["Content-Type"], self.headers["Authorization"], body)
        )
        self._reply(200, {**body, "status": {"replicas": body["spec"].get("replicas")}})

    def do_GET(self) -> None:
        self._reply(200, {"status": {"readyReplicas": 2, "updatedReplicas": 1}})


@pytest.fixture
def fake_api():
    server = HTTPServer(("127.0.0.1", 0), FakeKubernetes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeKubernetes.requests = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def controller():
    with fake_statefulset_controller() as url:
        yield KubernetesApplier(url, token="t")


# --- Hardening (security review F6): the "restricted" Pod Security Standard and beyond ------


def test_a_rollout_is_one_server_side_apply(fake_api) -> None:
    applier = KubernetesApplier(fake_api, token="t0ken")
    manifest = render_statefulset(SPEC, IMAGE, version=8, replicas=2)

    applied = applier.apply(manifest)

    [(path, content_type, auth, body)] = FakeKubernetes.requests
    assert path.startswith("/apis/apps/v1/namespaces/loopline/statefulsets/card-fraud-scorer?")
    assert "fieldManager=loopline" in path and "force=true" in path
    assert content_type == "application/apply-patch+yaml" and auth == "Bearer t0ken"
    assert body == manifest and applied["status"]["replicas"] == 2
    assert applier.status("loopline", "card-fraud-scorer")["readyReplicas"] == 2


def test_the_kubernetes_deployment_rolls_out_scales_and_rolls_back_a_version_that_never_gets_ready(
    controller,
) -> None:
    target = SPEC.model_copy(
        update={
            "streaming": SPEC.streaming.model_copy(
                update={
                    "backend": "kubernetes",
                    "kubernetes": KubernetesTarget(image="registry.example/loopline:1.2"),
                }
            )
        }
    )
    image = consumer_image(target, "card_fraud.yaml", bootstrap="kafka:9092")
    assert image.spec_path == "/opt/airflow/include/pipelines/card_fraud.yaml"
    deployment = KubernetesDeployment(target, image, controller, timeout=1.0, poll_seconds=0.05)
    assert deployment.replica_count() == 0

    assert deployment.deploy(7, 2).verdict == "done" and deployment.replica_count() == 2
    scaled = deployment.scale(8, 4)  # scaling keeps the running version
    assert scaled.verdict == "done" and FakeStatefulSetController.applies[-1] == "7"

    broken = deployment.deploy(99, 4)
    assert broken.verdict == "rolled_back" and "back to v7" in broken.steps[-1]
    assert FakeStatefulSetController.applies[-2:] == ["99", "7"]
    assert deployment.replace_dead(7).verdict == "no_change"  # the controller does that
    assert deployment.stop().verdict == "done" and deployment.replica_count() == 0


def test_the_health_probe_imports_nothing_heavy_and_reads_the_consumers_heartbeat() -> None:
    import subprocess
    import sys

    from loopline.streaming import consumer, health

    code = (
        "import sys, loopline.streaming.health\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'numpy', 'pyarrow', 'pydantic', 'confluent_kafka', 'yaml', 'loopline.spec'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.strip() == "[]"
    for slot in (0, 3):
        expected = consumer.heartbeat_path(Path("/s"), "card_fraud", slot)
        assert health.heartbeat_path(Path("/s"), "card_fraud", slot) == expected


def test_the_network_policy_is_applied_server_side_before_the_pods(fake_api, controller) -> None:
    from loopline.streaming.kubernetes import render_network_policy

    KubernetesApplier(fake_api, token="t0ken").apply(render_network_policy(SPEC, IMAGE))
    [(path, content_type, auth, body)] = FakeKubernetes.requests
    assert path.startswith(
        "/apis/networking.k8s.io/v1/namespaces/loopline/networkpolicies/card-fraud-scorer?"
    )
    assert "fieldManager=loopline" in path and "force=true" in path
    assert content_type == "application/apply-patch+yaml" and body["kind"] == "NetworkPolicy"
    assert auth == "Bearer t0ken"

    applied_kinds = []
    apply = controller.apply
    controller.apply = lambda manifest: applied_kinds.append(manifest["kind"]) or apply(manifest)
    deployment = KubernetesDeployment(SPEC, IMAGE, controller, timeout=1.0, poll_seconds=0.05)
    assert deployment.deploy(7, 2).verdict == "done"
    assert applied_kinds == ["NetworkPolicy", "Service", "PodDisruptionBudget", "StatefulSet"]
    [policy] = [p for p in FakeStatefulSetController.policies.values()
                if p["kind"] == "NetworkPolicy"]  # fmt: skip
    assert policy["spec"]["podSelector"]["matchLabels"]["loopline/pipeline"] == "card_fraud"
