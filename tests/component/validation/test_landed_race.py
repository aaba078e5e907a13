"""A landed key rewritten while the gate validates it (F12), on a real S3 server: only the
bytes that were judged are ever moved; the new bytes stay in landing for the next sweep, and
nothing unvalidated is left in validated/."""

from __future__ import annotations

import io

import pytest
from botocore.response import StreamingBody
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.validation.gate import validate_and_route
from support.paths import PIPELINES

DATA = load_spec(PIPELINES / "card_fraud.yaml").data
BUCKET = DATA.bucket
DAY = "dt=2026-11-23/"


def overwrite_after_first_read(store: ObjectStore, monkeypatch, key: str, new: bytes) -> None:
    """The uploader rewrites `key` just after the gate's GET of it has returned its bytes."""
    get_object = store.client.get_object
    done = []

    def get_then_overwrite(**kwargs):
        answer = get_object(**kwargs)
        if kwargs["Key"] == key and not done:
            body = answer["Body"].read()
            store.client.put_object(Bucket=BUCKET, Key=key, Body=new)
            answer["Body"] = StreamingBody(io.BytesIO(body), len(body))
            done.append(key)
        return answer

    monkeypatch.setattr(store.client, "get_object", get_then_overwrite)


def outside_landing(store: ObjectStore) -> list[str]:
    skip = ("profiles/", DATA.landing_prefix)
    return sorted(k for k in store.list_keys(BUCKET) if not k.startswith(skip))


BAD = generate(300, seed=8).drop_columns(["amount"])  # fails the suite: no amount column


@pytest.mark.parametrize(
    ("name", "judged"),
    [
        ("good.parquet", encode(generate(300, seed=7), "parquet")),  # moved as it is
        ("good.csv", encode(generate(300, seed=7), "csv")),  # its Parquet written first
        ("bad.parquet", encode(BAD, "parquet")),  # its report written first
    ],
)
def test_bytes_landed_during_validation_are_never_moved_as_the_judged_ones(
    store, suite, monkeypatch, name: str, judged: bytes
) -> None:
    key = f"{DATA.landing_prefix}{DAY}{name}"
    store.put_new(BUCKET, key, judged)
    rewritten = encode(generate(50, seed=9), name.rsplit(".", 1)[-1])
    overwrite_after_first_read(store, monkeypatch, key, rewritten)

    with pytest.raises(Exception, match="changed after it was read") as raised:
        validate_and_route(store, DATA, suite, key)

    assert type(raised.value).__name__ == "ObjectChangedError"
    assert outside_landing(store) == []  # no copy, no Parquet, no report, no marker
    assert store.get(BUCKET, key) == rewritten
    # The next sweep judges the new bytes.
    result = validate_and_route(store, DATA, suite, key)
    assert result.passed and result.rows == 50 and result.sha256 == sha256_hex(rewritten)


def test_a_copy_of_rewritten_bytes_is_deleted_when_it_fails_verification(
    store, monkeypatch
) -> None:
    """The rewrite lands between the move's HEAD and its copy, on a server that ignores
    CopySourceIfMatch (moto does): the copy holds bytes nobody judged and must not stay."""
    source, destination = f"{DATA.landing_prefix}{DAY}x.csv", f"{DATA.validated_prefix}x.csv"
    judged, rewritten = b"a,b\n1,2\n", b"a,b\n6,6\n"
    store.put_new(BUCKET, source, judged)
    etag = store.head(BUCKET, source)["ETag"]
    copy_object = store.client.copy_object

    def overwrite_then_copy(**kwargs):
        store.client.put_object(Bucket=BUCKET, Key=source, Body=rewritten)
        return copy_object(**kwargs)

    monkeypatch.setattr(store.client, "copy_object", overwrite_then_copy)
    with pytest.raises(Exception, match="changed after it was read"):
        store.move_verified(BUCKET, source, destination, sha256_hex(judged), etag=etag)

    assert store.head(BUCKET, destination) is None
    assert store.get(BUCKET, source) == rewritten
