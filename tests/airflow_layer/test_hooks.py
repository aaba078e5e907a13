"""The object-store hook: an Airflow connection as Loopline's store and shippable settings."""

from __future__ import annotations

import pytest
from loopline.airflow.hooks import ObjectStoreHook
from loopline.storage.settings import S3Settings
from servers import S3_ACCESS_KEY, S3_SECRET_KEY


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
