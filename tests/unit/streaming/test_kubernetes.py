"""The Kubernetes rendering of the replicas and the health probe's verdicts. Applying them
server-side against a fake API server, and the probe as its own process, are in
tests/component/streaming/test_kubernetes.py."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from loopline.runtime.files import write_atomically
from loopline.spec import load_spec
from loopline.streaming.consumer import heartbeat_path
from loopline.streaming.health import check
from loopline.streaming.kubernetes import (
    KubernetesApplier,
    consumer_image,
    render_statefulset,
)
from support.kubernetes_target import IMAGE, SPEC
from support.paths import PIPELINES


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


def test_the_health_probe_wants_a_fresh_running_heartbeat(tmp_path) -> None:
    assert check(tmp_path, "card_fraud", 0).startswith("no heartbeat yet")
    path = heartbeat_path(tmp_path, "card_fraud", 0)
    write_atomically(path, json.dumps({"state": "joining", "updated_at": time.time()}).encode())
    assert check(tmp_path, "card_fraud", 0) == "state 'joining', not 'running'"
    write_atomically(path, json.dumps({"state": "running", "updated_at": time.time()}).encode())
    assert check(tmp_path, "card_fraud", 0) is None
    assert check(tmp_path, "card_fraud", 0, now=time.time() + 120).startswith("heartbeat 120 s old")


def test_the_pods_serve_prometheus_metrics_where_the_annotations_say() -> None:
    image = replace(IMAGE, metrics_port=9464)
    pod = render_statefulset(SPEC, image, version=3, replicas=1)["spec"]["template"]
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--metrics-port") + 1] == "9464"
    assert pod["spec"]["containers"][0]["ports"] == [{"name": "metrics", "containerPort": 9464}]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9464"


# --- Hardening (security review F6): the "restricted" Pod Security Standard and beyond ------

RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def restricted_violations(pod: dict) -> list[str]:
    """What a namespace enforcing the "restricted" Pod Security Standard (Kubernetes 1.30)
    would refuse in `pod`, one reason per broken control."""
    found = []
    pod_context = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"pod {key}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]

        def either(key: str, context=context):
            return context.get(key, pod_context.get(key))

        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if either("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if either("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        if (either("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: no RuntimeDefault or Localhost seccomp profile")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities not dropped")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities added")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


def hardened_pod(**changes) -> dict:
    image = replace(IMAGE, metrics_port=9464, target=IMAGE.target.model_copy(update=changes))
    return render_statefulset(SPEC, image, version=3, replicas=1)["spec"]["template"]["spec"]


def test_the_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = hardened_pod()
    assert restricted_violations(pod) == []
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] > 0 and context["runAsGroup"] > 0 and context["fsGroup"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False  # the replica never calls the API


def test_the_pods_are_limited_and_limits_default_to_their_requests() -> None:
    [container] = hardened_pod()["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},  # Guaranteed QoS: what was reserved
    }
    [container] = hardened_pod(cpu_limit="2", memory_limit="3Gi")["containers"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}


def test_every_writable_path_is_a_size_capped_empty_dir() -> None:
    """The root file system is read-only: the heartbeats, the model's download folder and
    every cache must be on a mounted emptyDir, each with a sizeLimit."""
    pod = hardened_pod(scratch_size="3Gi")
    [container] = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    sizes = {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"]}
    assert set(mounts) == set(sizes) and sizes["scratch"] == "3Gi" and sizes["state"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    args = container["args"]
    writable = [args[args.index("--state-dir") + 1]]
    writable += [env["TMPDIR"], env["KERAS_HOME"], env["XDG_CACHE_HOME"]]
    for path in writable:
        assert any(path == m or path.startswith(m + "/") for m in mounts.values()), path
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_probes_give_python_time_to_start() -> None:
    [container] = hardened_pod()["containers"]
    for kind in ("readinessProbe", "startupProbe"):
        probe = container[kind]
        assert probe["timeoutSeconds"] >= 5, kind  # the default 1 s failed busy nodes
        assert probe["periodSeconds"] >= probe["timeoutSeconds"], kind
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # TensorFlow loads
    args = container["args"]
    assert args[args.index("--metrics-host") + 1] == "0.0.0.0"  # behind the NetworkPolicy


def test_the_network_policy_admits_only_the_scrapers_to_the_metrics_port() -> None:
    from loopline.streaming.kubernetes import render_network_policy

    scrapers = IMAGE.target.model_copy(update={"scrape_pod_labels": {"app": "prom"}})
    image = replace(IMAGE, metrics_port=9464, target=scrapers)
    policy = render_network_policy(SPEC, image)
    assert policy["kind"] == "NetworkPolicy" and policy["metadata"]["namespace"] == "loopline"
    pod_labels = render_statefulset(SPEC, image, 3, 1)["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()  # it guards the replicas' pods
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress: brokers, S3, DNS
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    },
                    "podSelector": {"matchLabels": {"app": "prom"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9464}],
        }
    ]
    closed = render_network_policy(SPEC, IMAGE)  # no metrics port: nothing may connect
    assert closed["spec"]["ingress"] == [] and closed["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize(
    ("url", "ca_file", "reason"),
    [
        ("http://k8s.example:6443", True, "a bearer token goes over https:// only"),
        ("http://10.0.0.1", True, "a bearer token goes over https:// only"),
        ("https://k8s.example:6443", False, "refusing ca_file false"),
    ],
)
def test_the_token_never_goes_in_the_clear_or_unverified(url, ca_file, reason) -> None:
    from loopline.streaming.kubernetes import InsecureTransport

    with pytest.raises(InsecureTransport, match=reason):
        KubernetesApplier(url, token="t", ca_file=ca_file)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8001", "http://localhost:8001", "http://[::1]:1"]
)
def test_plain_http_is_allowed_to_a_loopback_address(url) -> None:
    applier = KubernetesApplier(url, token="t", ca_file=False)  # kubectl proxy, tests
    assert str(applier.client.base_url).startswith(url.rstrip("/"))


def kubernetes_spec(tmp_path, **target) -> Path:
    """The demo spec deploying to Kubernetes with `target` as its kubernetes section."""
    import yaml

    document = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    document["streaming"] |= {"backend": "kubernetes", "kubernetes": target}
    path = tmp_path / "card_fraud.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


BAD_TARGETS = [
    pytest.param({"namespace": "Team_A"}, "namespace", "'Team_A' is not a Kubernetes namespace: "
                 "expected a DNS-1123 label", id="namespace-uppercase"),
    pytest.param({"namespace": "../../api"}, "namespace", "is not a Kubernetes namespace",
                 id="namespace-path"),
    pytest.param({"namespace": "a" * 64}, "namespace", "at most 63", id="namespace-too-long"),
    pytest.param({"cpu": "lots"}, "cpu", "'lots' is not a CPU quantity: expected cores (1, 0.5) "
                 "or millicores (500m)", id="cpu-word"),
    pytest.param({"cpu": "0"}, "cpu", "'0' is not a CPU quantity", id="cpu-zero"),
    pytest.param({"memory": "2GB"}, "memory", "'2GB' is not a memory quantity: expected bytes "
                 "with an optional suffix (512Mi, 2Gi, 2G)", id="memory-unit"),
    pytest.param({"memory_limit": "1Gi"}, "", "memory_limit '1Gi' is below memory '2Gi'",
                 id="limit-below-request"),
    pytest.param({"cpu": "2", "cpu_limit": "1500m"}, "", "cpu_limit '1500m' is below cpu '2'",
                 id="cpu-limit-below-request"),
    pytest.param({"image": "registry/loopline:1 --privileged"}, "image", "is not an image "
                 "reference: expected one word with no spaces", id="image-with-space"),
    pytest.param({"image": ""}, "image", "is not an image reference", id="image-empty"),
    pytest.param({"run_as_user": 0}, "run_as_user", "got 0, expected greater than or equal to 1",
                 id="root"),
    pytest.param({"scrape_pod_labels": {"app": "not a label"}}, "scrape_pod_labels",
                 "'app': 'not a label' is not a Kubernetes label", id="bad-label"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "field", "reason"), BAD_TARGETS)
def test_a_bad_kubernetes_target_is_refused_naming_field_line_and_reason(
    tmp_path, target, field, reason
) -> None:
    from loopline.spec import SpecError

    path = kubernetes_spec(tmp_path, **{"image": "registry.example/loopline:1.2", **target})
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    where = ".".join(filter(None, ("streaming.kubernetes", field)))
    assert message.startswith(f"1 problem in {path}"), message
    assert f"{where} (line " in message and reason in message, message


def test_the_spec_sets_limits_scratch_user_and_scrapers(tmp_path) -> None:
    from loopline.streaming.kubernetes import render_network_policy

    path = kubernetes_spec(
        tmp_path,
        image="registry.example/loopline@sha256:" + "a" * 64,
        namespace="scoring",
        cpu="500m",
        cpu_limit="2",
        memory="1536Mi",
        memory_limit="2Gi",
        scratch_size="4Gi",
        run_as_user=1001,
        run_as_group=1002,
        scrape_namespace_labels={"team": "observability"},
        scrape_pod_labels={"app.kubernetes.io/name": "vmagent"},
    )
    spec = load_spec(path)
    image = consumer_image(spec, "card_fraud.yaml", bootstrap="kafka:9092")
    manifest = render_statefulset(spec, image, version=1, replicas=1)
    pod = manifest["spec"]["template"]["spec"]
    assert manifest["metadata"]["namespace"] == "scoring"
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1536Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"]}["scratch"] == "4Gi"
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (1001, 1002)
    [rule] = render_network_policy(spec, image)["spec"]["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {"team": "observability"}
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "vmagent"}


def test_the_pods_take_kafka_security_from_the_secret_and_bind_metrics_for_the_policy() -> None:
    pod = render_statefulset(SPEC, IMAGE, version=3, replicas=1)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {entry["name"]: entry for entry in container["env"]}
    kafka = env["LOOPLINE_KAFKA_SECURITY"]["valueFrom"]["secretKeyRef"]
    assert kafka == {"name": "loopline-s3", "key": "LOOPLINE_KAFKA_SECURITY", "optional": True}
    args = container.get("args", []) + container.get("command", [])
    if IMAGE.metrics_port:  # a pod's scrapers reach it through the NetworkPolicy only
        assert args[args.index("--metrics-host") + 1] == "0.0.0.0"


def test_the_cli_sends_a_kubernetes_deployment_to_its_dag(tmp_path) -> None:
    """`loopline stream deploy` has no cluster connection: it says which DAG has one, before
    any store, broker or replica is touched (None stands for each here)."""
    from loopline.commands.consumers import open_consumers

    path = kubernetes_spec(tmp_path, image="registry.example/loopline:1.2")
    spec = load_spec(path)
    with pytest.raises(SystemExit, match=r"kubernetes; deploy it with the card_fraud\.stream_"):
        open_consumers(spec, path, None, "kafka:9092", "{}", tmp_path)  # type: ignore[arg-type]


def test_serving_pods_get_ports_readiness_services_a_budget_and_time_to_unroute() -> None:
    from loopline.spec.sections import ServeSpec
    from loopline.streaming.kubernetes import (
        api_path,
        render_disruption_budget,
        render_network_policy,
        render_services,
    )

    image = replace(IMAGE, metrics_port=9464, serve=ServeSpec(http_port=8000, grpc_port=8001))
    pod = render_statefulset(SPEC, image, 3, 2)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 9464, "http": 8000, "grpc": 8001
    }  # fmt: skip
    assert container["args"][-2:] == ["--serve-host", "0.0.0.0"]
    ready = container["readinessProbe"]["httpGet"]
    assert ready == {"path": "/v2/health/ready", "port": "http"}
    assert "exec" in container["startupProbe"]  # the consumer joined before traffic comes
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"

    headless, online = render_services(SPEC, image)
    assert headless["metadata"]["name"] == "card-fraud-scorer"  # the StatefulSet's serviceName
    assert headless["spec"]["clusterIP"] == "None"
    assert online["metadata"]["name"] == "card-fraud-scorer-online"
    assert [(p["name"], p["port"]) for p in online["spec"]["ports"]] == [
        ("http", 8000), ("grpc", 8001)
    ]  # fmt: skip
    assert api_path(online) == "/api/v1/namespaces/loopline/services/card-fraud-scorer-online"
    budget = render_disruption_budget(SPEC, image)
    assert budget["spec"]["maxUnavailable"] == 1
    assert api_path(budget).startswith("/apis/policy/v1/namespaces/loopline/poddisruptionbudgets/")
    ingress = render_network_policy(SPEC, image)["spec"]["ingress"]
    assert ingress[-1] == {
        "from": [{"podSelector": {}}],
        "ports": [{"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 8001}],
    }

    kafka_only = render_statefulset(SPEC, IMAGE, 3, 2)["spec"]["template"]["spec"]
    assert "exec" in kafka_only["containers"][0]["readinessProbe"]
    assert "lifecycle" not in kafka_only["containers"][0]
    assert [s["metadata"]["name"] for s in render_services(SPEC, IMAGE)] == ["card-fraud-scorer"]
