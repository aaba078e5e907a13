"""Hooks: an Airflow connection as Loopline's store and shippable settings, as the Kafka
settings, and as the Kubernetes API the streaming operators deploy through."""

from __future__ import annotations

import json

import pytest
import yaml
from loopline.airflow.hooks import KafkaBootstrapHook, ObjectStoreHook
from loopline.airflow.operators.streaming import DeployConsumersOperator
from loopline.storage.settings import S3Settings
from loopline.streaming.kubernetes import KubernetesDeployment
from support.fake_kubernetes import FakeStatefulSetController, fake_statefulset_controller
from support.servers import S3_ACCESS_KEY, S3_SECRET_KEY
from support.validated_data import DEMO


def test_a_connection_becomes_the_store_and_the_settings_a_worker_gets(
    s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_TEST", s3.connection_uri())
    hook = ObjectStoreHook(aws_conn_id="loopline_test")

    assert hook.settings == S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, "us-east-1")
    hook.store.ensure_bucket("hooked")
    hook.store.put_new("hooked", "a/b.txt", b"written through the hook")
    # A worker that only has the settings (shipped as JSON) reads the same object.
    shipped = S3Settings.from_json(hook.settings.to_json())
    assert shipped.boto3_client().get_object(Bucket="hooked", Key="a/b.txt")["Body"].read() == (
        b"written through the hook"
    )
    assert hook.store is hook.store  # built once per task


def test_hooks_of_one_connection_share_a_client_until_the_connection_changes(
    s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task makes several hooks (its operator, its callbacks); each new boto3 client costs a
    fresh load of S3's service model. One per connection and process; a changed secret or
    endpoint gets its own, which still works."""
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_TEST", s3.connection_uri())
    first, second = (ObjectStoreHook(aws_conn_id="loopline_test") for _ in range(2))
    assert first.shared_client() is second.shared_client()
    first.store.ensure_bucket("shared")

    changed = json.loads(s3.connection_uri())
    changed["password"] = "another-secret"
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_TEST", json.dumps(changed))
    rotated = ObjectStoreHook(aws_conn_id="loopline_test")
    assert rotated.shared_client() is not first.shared_client()
    assert rotated.shared_client().meta.endpoint_url == s3.endpoint
    creds = rotated.shared_client()._request_signer._credentials
    assert creds.secret_key == "another-secret"


def test_a_session_token_reaches_every_client_the_settings_build(
    s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary credentials (assumed roles, IRSA) carry a token; settings that dropped it
    would be refused by S3."""
    connection = json.loads(s3.connection_uri())
    connection["extra"]["aws_session_token"] = "temporary-token"
    monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_TEST", json.dumps(connection))

    settings = ObjectStoreHook(aws_conn_id="loopline_test").settings
    shipped = S3Settings.from_json(settings.to_json())
    assert shipped == settings and shipped.session_token == "temporary-token"
    sent: list[str | bytes | None] = []
    client = shipped.boto3_client()
    client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.headers["X-Amz-Security-Token"])
    )
    client.list_buckets()
    assert sent in ([b"temporary-token"], ["temporary-token"])
    arrow_options = shipped.filesystem().__reduce__()[1][0]  # what it was built with
    assert arrow_options["session_token"] == "temporary-token"
    # Settings shipped by an older version (no token in the JSON) still load.
    legacy = json.dumps({"endpoint_url": s3.endpoint, "access_key": "k", "secret_key": "s"})
    assert S3Settings.from_json(legacy).session_token is None


def test_a_kubernetes_spec_deploys_through_the_kubernetes_connection(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`streaming.backend: kubernetes` makes the streaming operators apply a StatefulSet
    through the `loopline_kubernetes` connection (a fake API server and controller here)."""
    document = DEMO.model_dump(mode="json", exclude_none=True)
    document["streaming"] |= {
        "backend": "kubernetes",
        "kubernetes": {"image": "registry.example/loopline:2", "bootstrap": "kafka:9092"},
    }
    spec_path = tmp_path / "card_fraud.yaml"
    spec_path.write_text(yaml.safe_dump(document))
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": "airflow-side:9092"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka))
    with fake_statefulset_controller() as url:
        k8s = {"conn_type": "generic", "host": url, "password": "s3cret"}
        monkeypatch.setenv("AIRFLOW_CONN_LOOPLINE_KUBERNETES", json.dumps(k8s))
        operator = DeployConsumersOperator(task_id="deploy", spec_path=str(spec_path))

        deployment = operator.consumers.deployment
        assert isinstance(deployment, KubernetesDeployment)
        assert deployment.image.bootstrap == "kafka:9092"  # the pods' view, not Airflow's
        assert deployment.image.metrics_port == DEMO.streaming.metrics_port
        assert deployment.applier.client.headers["Authorization"] == "Bearer s3cret"
        deployment.timeout, deployment.poll_seconds = 2.0, 0.05
        assert deployment.deploy(4, 2).verdict == "done"
        [applied] = FakeStatefulSetController.objects.values()
        container = applied["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "registry.example/loopline:2"
        assert applied["spec"]["replicas"] == 2


def test_the_kafka_connection_may_set_the_session_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = {"conn_type": "kafka", "extra": {"bootstrap.servers": "b:9092"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(plain))
    assert KafkaBootstrapHook().session_timeout_ms is None
    local = {"conn_type": "kafka", "extra": {**plain["extra"], "session.timeout.ms": "2000"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(local))
    assert KafkaBootstrapHook().session_timeout_ms == 2000
