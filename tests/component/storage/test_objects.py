"""ObjectStore on the real S3 server: create-only writes (a retry with the same bytes is a
no-op, other bytes are refused), verified moves (safe to repeat; bytes rewritten since they
were read are never moved) and version-pinned reads."""

from __future__ import annotations

import pytest
from loopline.storage.objects import (
    ObjectChangedError,
    ObjectConflictError,
    ObjectStore,
    sha256_hex,
)

BUCKET = "objects"


@pytest.fixture
def store(s3) -> ObjectStore:
    store = ObjectStore(s3.client())
    store.ensure_bucket(BUCKET)
    return store


def test_a_bucket_is_created_once(s3) -> None:
    store = ObjectStore(s3.client())
    assert store.ensure_bucket("fresh") is True
    assert store.ensure_bucket("fresh") is False


def test_a_create_only_write_lands_once_and_a_retry_with_the_same_bytes_is_a_no_op(store) -> None:
    first = store.put_new(BUCKET, "a/key", b"bytes", metadata={"by": "test"})
    again = store.put_new(BUCKET, "a/key", b"bytes")

    assert first.created and not again.created
    assert first.sha256 == again.sha256 == sha256_hex(b"bytes")
    assert first.uri == f"s3://{BUCKET}/a/key"
    assert store.get(BUCKET, "a/key") == b"bytes"
    assert store.metadata(BUCKET, "a/key") == {"by": "test", "sha256": sha256_hex(b"bytes")}


def test_other_bytes_for_a_written_key_are_refused_and_the_first_stay(store) -> None:
    store.put_new(BUCKET, "k", b"first")

    with pytest.raises(
        ObjectConflictError, match=f"already exists with sha256 {sha256_hex(b'first')}"
    ):
        store.put_new(BUCKET, "k", b"second")
    assert store.get(BUCKET, "k") == b"first"


def test_a_verified_move_copies_checks_and_deletes_and_is_safe_to_repeat(store) -> None:
    store.put_new(BUCKET, "landing/f", b"payload")
    digest = sha256_hex(b"payload")

    assert store.move_verified(BUCKET, "landing/f", "validated/f", digest) is True
    assert store.head(BUCKET, "landing/f") is None
    assert store.get(BUCKET, "validated/f") == b"payload"
    assert store.checksum(BUCKET, "validated/f") == digest
    # Repeated after the move (a task that crashed before it could say so): nothing to do.
    assert store.move_verified(BUCKET, "landing/f", "validated/f", digest) is False


def test_bytes_rewritten_since_they_were_read_are_not_moved(store) -> None:
    store.put_new(BUCKET, "landing/f", b"judged")
    etag = store.head(BUCKET, "landing/f")["ETag"]
    judged, read = store.get_version(BUCKET, "landing/f", etag)
    store.put(BUCKET, "landing/f", b"landed again", "application/octet-stream")

    with pytest.raises(ObjectChangedError, match="changed after it was read"):
        store.move_verified(BUCKET, "landing/f", "validated/f", sha256_hex(judged), etag=read)
    assert store.head(BUCKET, "validated/f") is None
    assert store.get(BUCKET, "landing/f") == b"landed again"  # kept for the next sweep
    with pytest.raises(ObjectChangedError):
        store.get_version(BUCKET, "landing/f", etag)


def test_a_destination_holding_other_bytes_keeps_the_source(store) -> None:
    store.put_new(BUCKET, "landing/f", b"new")
    store.put_new(BUCKET, "validated/f", b"old")

    with pytest.raises(ObjectConflictError, match="does not hold the bytes"):
        store.move_verified(BUCKET, "landing/f", "validated/f", sha256_hex(b"new"))
    assert store.get(BUCKET, "landing/f") == b"new"
    assert store.get(BUCKET, "validated/f") == b"old"


def test_a_source_gone_without_its_bytes_at_the_destination_is_an_error(store) -> None:
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/landing/none is gone"):
        store.move_verified(BUCKET, "landing/none", "validated/none", sha256_hex(b"x"))


def test_bytes_never_read_are_moved_and_checked_by_their_etag(store) -> None:
    store.put_new(BUCKET, "landing/big", b"refused for its size, never read")

    assert store.move_verified(BUCKET, "landing/big", "quarantine/big", None) is True
    assert store.get(BUCKET, "quarantine/big") == b"refused for its size, never read"
    assert store.head(BUCKET, "landing/big") is None


def test_keys_are_listed_and_deleted_by_prefix(store) -> None:
    for size in range(3):
        store.put_new(BUCKET, f"p/{size}", b"x" * size)
    store.put_new(BUCKET, "q/0", b"")

    assert list(store.list_sizes(BUCKET, "p/")) == [("p/0", 0), ("p/1", 1), ("p/2", 2)]
    assert store.delete_prefix(BUCKET, "p/") == 3
    assert list(store.list_keys(BUCKET)) == ["q/0"]
    assert store.get_if_exists(BUCKET, "p/1") is None
    assert store.get_if_exists(BUCKET, "q/0") == b""
