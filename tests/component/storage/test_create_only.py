"""Create-only writes (F16): a lost race answered 409 is a conflict like 412, and a server that
ignores ``If-None-Match: *`` is refused before the registry relies on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from loopline.registry import CHAMPION, ModelRegistry, RegistryError
from loopline.storage import objects
from loopline.storage.objects import (
    CreateOnlyUnsupportedError,
    ObjectConflictError,
    ObjectStore,
    sha256_hex,
)

BUCKET = "loopline"


def client_error(status: int, code: str, operation: str) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)  # type: ignore[arg-type]


class RacingClient:
    """S3 as AWS answers a create-only PUT while another conditional write to the key is in
    flight: 409 ConditionalRequestConflict; HEAD then shows `landed` (None: not yet)."""

    def __init__(self, landed: bytes | None) -> None:
        self.landed = landed

    def put_object(self, **_: Any) -> None:
        raise client_error(409, "ConditionalRequestConflict", "PutObject")

    def head_object(self, **_: Any) -> dict[str, Any]:
        if self.landed is None:
            raise client_error(404, "404", "HeadObject")
        return {"Metadata": {"sha256": sha256_hex(self.landed)}}


def test_a_409_conditional_conflict_is_a_lost_race_not_a_crash() -> None:
    store = ObjectStore(RacingClient(landed=None))
    with pytest.raises(ObjectConflictError, match=r"in progress \(409 ConditionalRequest"):
        store.put_new(BUCKET, "models/fraud/versions/000001/.claim", b"mine")


def test_a_409_from_a_racing_retry_of_the_same_bytes_is_success() -> None:
    stored = ObjectStore(RacingClient(landed=b"same")).put_new(BUCKET, "k", b"same")
    assert stored.created is False
    with pytest.raises(ObjectConflictError, match="already exists with sha256"):
        ObjectStore(RacingClient(landed=b"theirs")).put_new(BUCKET, "k", b"mine")


def test_other_409s_are_not_mistaken_for_a_lost_race() -> None:
    class Busy(RacingClient):
        def put_object(self, **_: Any) -> None:
            raise client_error(409, "OperationAborted", "PutObject")

    with pytest.raises(ClientError, match="OperationAborted"):
        ObjectStore(Busy(landed=None)).put_new(BUCKET, "k", b"mine")


class IgnoresCondition:
    """A real S3 client whose server, like some S3 clones, ignores If-None-Match."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_object(self, **params: Any) -> Any:
        params.pop("IfNoneMatch", None)
        return self._client.put_object(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def unprobed(monkeypatch) -> None:
    """Forget which servers this process has probed: each test probes afresh."""
    monkeypatch.setattr(objects, "_HONOURS_CREATE_ONLY", set())


def test_a_server_that_ignores_the_condition_is_refused(s3, unprobed, tmp_path: Path) -> None:
    store = ObjectStore(IgnoresCondition(s3.client()))
    store.ensure_bucket(BUCKET)
    with pytest.raises(CreateOnlyUnsupportedError) as refused:
        store.verify_create_only(BUCKET)
    assert f"S3 server at {s3.endpoint} ignores If-None-Match: * in bucket {BUCKET}" in str(
        refused.value
    )
    assert list(store.list_keys(BUCKET)) == []  # the probe cleaned up after itself

    # The registry will not register (or claim a number) on such a server; the CLI and the
    # tasks see a RegistryError with the same words.
    (tmp_path / "model.keras").write_text("weights")
    registry = ModelRegistry(store, BUCKET)
    with pytest.raises(RegistryError, match=f"S3 server at {s3.endpoint} ignores"):
        registry.register("fraud", tmp_path, metrics={}, input_schema=[])
    assert list(store.list_keys(BUCKET)) == []


def test_the_real_server_passes_with_three_requests_once_per_process(s3, unprobed) -> None:
    client = s3.client()
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    store = ObjectStore(client)
    store.ensure_bucket(BUCKET)
    sent.clear()

    store.verify_create_only(BUCKET)
    assert sent == ["PUT", "PUT", "DELETE"]
    ObjectStore(client).verify_create_only(BUCKET)  # another store, same server and bucket
    assert len(sent) == 3
    assert list(store.list_keys(BUCKET)) == []


def test_registering_and_promoting_probe_the_server_first(s3, unprobed, tmp_path) -> None:
    client = s3.client()
    store = ObjectStore(client)
    store.ensure_bucket(BUCKET)
    probes: list[str] = []

    def note_probe(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].startswith(objects.PROBE_PREFIX):
            probes.append(params["Key"])

    client.meta.events.register("before-parameter-build.s3.PutObject", note_probe)
    (tmp_path / "model.keras").write_text("weights")
    registry = ModelRegistry(store, BUCKET)
    registry.register("fraud", tmp_path, metrics={}, input_schema=[])
    registry.move_alias("fraud", CHAMPION, 1, expected=None, action="set", reason="test", by="test")
    assert len(probes) == 2  # two PUTs of one probe key, before the first create-only write
