"""The local stack's S3 server, started by the stack's own code (`LocalStack._start_s3`): a web
page or another local process without the key can neither read, write, nor wipe it, while
the clients Loopline uses (boto3, pyarrow, s3fs) work as before."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from loopline import cli
from loopline.stack.config import (
    DEFAULT_PORTS,
    HOST,
    PORT_ENV,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    free_ports,
    load_config,
)
from loopline.stack.local import LocalStack
from loopline.stack.s3_snapshot import MANIFEST
from loopline.stack.sigv4 import Refused, verify
from support.paths import PROJECT_ROOT

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack's S3 server and snapshotter, on free ports, state in a temp folder."""
    state_dir = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as env:
        for name, port in zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True):
            env.setenv(PORT_ENV[name], str(port))
        env.setenv("LOOPLINE_STATE_DIR", str(state_dir))
        local = LocalStack(load_config(PROJECT_ROOT))
        local._start_s3()
        try:
            yield local
        finally:
            local.processes.stop("s3-snapshot")
            local.processes.stop("s3")


@pytest.fixture
def client(stack: LocalStack) -> Any:
    client = stack.s3_client()
    client.create_bucket(Bucket="data")
    client.put_object(Bucket="data", Key="secret.csv", Body=b"card,amount\n1,2\n")
    return client


def signed(method: str, url: str, secret: str = S3_SECRET_KEY, **headers: str) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers)
    request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    SigV4Auth(Credentials(S3_ACCESS_KEY, secret), "s3", "us-east-1").add_auth(request)
    return request


def send(request: AWSRequest, url: str | None = None) -> httpx.Response:
    return httpx.request(request.method, url or request.url, headers=dict(request.headers))


def test_a_cross_origin_preflight_or_form_post_gets_no_cors_grant(
    stack: LocalStack, client: Any
) -> None:
    endpoint = stack.config.s3_endpoint
    preflight = httpx.options(
        f"{endpoint}/data/planted",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "PUT"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    # A "simple" request needs no preflight: a page can send it, but not read the answer.
    form = httpx.post(
        f"{endpoint}/data",
        headers={"Origin": EVIL},
        files={"key": (None, "planted"), "file": ("x", b"attacker's bytes")},
    )
    assert form.status_code == 403 and "access-control-allow-origin" not in form.headers
    with pytest.raises(ClientError, match=r"Not Found|NoSuchKey|404"):
        client.head_object(Bucket="data", Key="planted")


def test_anonymous_requests_are_refused(stack: LocalStack, client: Any) -> None:
    listing = httpx.get(f"{stack.config.s3_endpoint}/data?list-type=2")
    assert listing.status_code == 403
    assert b"<Code>AccessDenied</Code>" in listing.content and b"secret.csv" not in listing.content
    assert httpx.get(f"{stack.config.s3_endpoint}/data/secret.csv").status_code == 403


def test_wrongly_signed_requests_are_refused(stack: LocalStack, client: Any) -> None:
    endpoint = stack.config.s3_endpoint
    wrong_secret = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key="guessed",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        wrong_secret.list_objects_v2(Bucket="data")
    unknown_key = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        unknown_key.get_object(Bucket="data", Key="secret.csv")
    # A genuine signature replayed against another request: another key, then another method.
    request = signed("GET", f"{endpoint}/data/secret.csv")
    assert send(request).status_code == 200
    assert send(request, f"{endpoint}/data/other.csv").status_code == 403
    request.method = "DELETE"
    assert send(request).status_code == 403
    assert client.get_object(Bucket="data", Key="secret.csv")["ContentLength"] == 16


def test_motos_admin_api_is_refused_even_when_signed(stack: LocalStack, client: Any) -> None:
    endpoint = stack.config.s3_endpoint
    assert httpx.post(f"{endpoint}/moto-api/reset").status_code == 403
    assert send(signed("POST", f"{endpoint}/moto-api/reset")).status_code == 403
    assert httpx.get(f"{endpoint}/moto-api/data.json").status_code == 403
    assert client.get_object(Bucket="data", Key="secret.csv")["Body"].read().startswith(b"card")


def test_presigned_links_work_until_they_expire(stack: LocalStack, client: Any) -> None:
    v4 = boto3.client(
        "s3",
        endpoint_url=stack.config.s3_endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    params = {"Bucket": "data", "Key": "secret.csv"}
    link = v4.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    assert httpx.get(link).content.startswith(b"card")
    assert httpx.get(link.replace("secret.csv", "other.csv")).status_code == 403
    expired = v4.generate_presigned_url("get_object", Params=params, ExpiresIn=1)
    environ = _environ_of(expired)
    with pytest.raises(Refused, match="expired"):
        verify(environ, {S3_ACCESS_KEY: S3_SECRET_KEY}, datetime.now(UTC) + timedelta(seconds=5))


def _environ_of(url: str) -> dict[str, str]:
    path, _, query = url.partition("://")[2].partition("/")[2].partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/{path}?{query}",
        "QUERY_STRING": query,
        "HTTP_HOST": url.split("/")[2],
    }


def test_the_clients_loopline_uses_still_work(stack: LocalStack, client: Any) -> None:
    """boto3 (multipart too), pyarrow's S3FileSystem and s3fs, with keys that S3 encodes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import s3fs
    from boto3.s3.transfer import TransferConfig
    from pyarrow import fs

    key = "card_fraud/validated/dt=2026-01-01/a b+é:c.parquet"
    body = os.urandom(6 << 20)
    client.upload_fileobj(
        io.BytesIO(body), "data", "big.bin", Config=TransferConfig(multipart_threshold=5 << 20)
    )
    assert client.get_object(Bucket="data", Key="big.bin")["Body"].read() == body

    host = stack.config.s3_endpoint.removeprefix("http://")
    arrow = fs.S3FileSystem(
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        endpoint_override=host,
        scheme="http",
        region="us-east-1",
    )
    pq.write_table(pa.table({"amount": [1.0, 2.0]}), f"data/{key}", filesystem=arrow)
    assert pq.read_table(f"data/{key}", filesystem=arrow).num_rows == 2
    files = arrow.get_file_info(fs.FileSelector("data/card_fraud", recursive=True))
    assert f"data/{key}" in {info.path for info in files}

    s3 = s3fs.S3FileSystem(key=S3_ACCESS_KEY, secret=S3_SECRET_KEY, endpoint_url=f"http://{host}")
    assert s3.cat(f"data/{key}") == client.get_object(Bucket="data", Key=key)["Body"].read()


def test_a_mass_delete_needs_stack_snapshot_allow_deletes(
    stack: LocalStack, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("a", "b", "c"):
        client.put_object(Bucket="data", Key=key, Body=key.encode())
    stack.snapshot()
    saved = (stack.config.s3_snapshot_dir / MANIFEST).read_text()
    for item in client.list_objects_v2(Bucket="data")["Contents"]:
        client.delete_object(Bucket="data", Key=item["Key"])
    project = ["--project", str(PROJECT_ROOT)]

    with pytest.MonkeyPatch.context() as env:
        env.setenv("LOOPLINE_STATE_DIR", str(stack.config.state_dir))
        assert cli.main([*project, "stack", "snapshot"]) == 1
        assert "--allow-deletes" in capsys.readouterr().err
        assert (stack.config.s3_snapshot_dir / MANIFEST).read_text() == saved
        assert cli.main([*project, "stack", "snapshot", "--allow-deletes"]) == 0
    assert "data" in (stack.config.s3_snapshot_dir / MANIFEST).read_text()
    assert (stack.config.s3_snapshot_dir / MANIFEST).read_text() != saved


def test_the_server_listens_on_loopback_only(stack: LocalStack) -> None:
    assert stack.config.s3_endpoint.startswith(f"http://{HOST}:")
    import psutil

    pid = stack.processes.pid("s3")
    assert pid is not None
    addresses = {c.laddr.ip for c in psutil.Process(pid).net_connections() if c.status == "LISTEN"}
    assert addresses == {HOST}
