"""The Kubernetes rendering of the replicas, applied server-side against a fake API server,
and the health probe it runs."""

from __future__ import annotations

import json
import threading
import time
from http.server import HTTPServer

import pytest
from conftest import PIPELINES
from fake_kubernetes import FakeStatefulSetController, JsonApi, fake_statefulset_controller
from loopline.spec import load_spec
from loopline.spec.model import KubernetesTarget
from loopline.streaming.consumer import heartbeat_path, write_atomically
from loopline.streaming.health import check
from loopline.streaming.kubernetes import (
    ConsumerImage,
    KubernetesApplier,
    KubernetesDeployment,
    consumer_image,
    render_statefulset,
)

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
IMAGE = ConsumerImage(
    image="registry.example/loopline:1.2",
    spec_path="/usr/local/airflow/include/pipelines/card_fraud.yaml",
    bootstrap="kafka:9092",
    s3_secret="loopline-s3",
)


def test_the_statefulset_gives_each_ordinal_its_slot_and_rolls_one_pod_at_a_time() -> None:
    manifest = render_statefulset(SPEC, IMAGE, version=7, replicas=9)
    spec = manifest["spec"]
    assert manifest["kind"] == "StatefulSet" and manifest["metadata"]["name"] == "card-fraud-scorer"
    assert spec["replicas"] == SPEC.streaming.partitions  # 9 asked, never beyond 4 partitions
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[args.index("--slot") + 1] == "$(POD_INDEX)"
    assert args[args.index("--version") + 1] == "7" and "--retire-on-stop" in args
    index = next(e for e in container["env"] if e["name"] == "POD_INDEX")
    assert "apps.kubernetes.io/pod-index" in index["valueFrom"]["fieldRef"]["fieldPath"]
    secret = next(e for e in container["env"] if e["name"] == "LOOPLINE_S3")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "loopline-s3", "key": "LOOPLINE_S3"}
    assert container["readinessProbe"]["exec"]["command"][:3] == [
        "python",
        "-m",
        "loopline.streaming.health",
    ]
    assert pod["terminationGracePeriodSeconds"] >= 30  # time to drain on SIGTERM
    assert spec["template"]["metadata"]["labels"]["loopline/model-version"] == "7"


class FakeKubernetes(JsonApi):
    requests: list = []

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeKubernetes.requests.append(
            (self.path, self.headers["Content-Type"], self.headers["Authorization"], body)
        )
        self._reply(200, {**body, "status": {"replicas": body["spec"]["replicas"]}})

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


def test_the_health_probe_wants_a_fresh_running_heartbeat(tmp_path) -> None:
    assert check(tmp_path, "card_fraud", 0).startswith("no heartbeat yet")
    path = heartbeat_path(tmp_path, "card_fraud", 0)
    write_atomically(path, json.dumps({"state": "joining", "updated_at": time.time()}).encode())
    assert check(tmp_path, "card_fraud", 0) == "state 'joining', not 'running'"
    write_atomically(path, json.dumps({"state": "running", "updated_at": time.time()}).encode())
    assert check(tmp_path, "card_fraud", 0) is None
    assert check(tmp_path, "card_fraud", 0, now=time.time() + 120).startswith("heartbeat 120 s old")


@pytest.fixture
def controller():
    with fake_statefulset_controller() as url:
        yield KubernetesApplier(url, token="t")


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


def test_the_pods_serve_prometheus_metrics_where_the_annotations_say() -> None:
    image = ConsumerImage(**{**IMAGE.__dict__, "metrics_port": 9464})
    pod = render_statefulset(SPEC, image, version=3, replicas=1)["spec"]["template"]
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--metrics-port") + 1] == "9464"
    assert pod["spec"]["containers"][0]["ports"] == [{"name": "metrics", "containerPort": 9464}]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9464"
