"""A small, explicit object store over a boto3 S3 client.

Writes are create-only by default (``If-None-Match: *``): a key is written once, a retry that
brings the same bytes is a no-op, and different bytes for an existing key are an error rather
than a silent overwrite. A single PUT is atomic on S3: readers see all of an object or none.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from datetime import datetime

    from botocore.client import BaseClient  # boto3 ships no types: Any to mypy

log = logging.getLogger(__name__)

CHECKSUM_METADATA_KEY = "sha256"
PROBE_PREFIX = "_loopline/probes/"

# (endpoint, bucket) pairs whose server was seen to refuse a second create-only write; one
# probe per process and bucket, whatever the number of ObjectStores made.
_HONOURS_CREATE_ONLY: set[tuple[str, str]] = set()
_PROBE_LOCK = threading.Lock()


@dataclass
class ObjectTraffic:
    """Bytes and objects this process read from and wrote to S3 through any ObjectStore:
    what a task's cost record counts (``loopline.records.cost``)."""

    bytes_read: int = 0
    bytes_written: int = 0
    objects_read: int = 0
    objects_written: int = 0

    def read(self, data: bytes) -> bytes:
        self.bytes_read += len(data)
        self.objects_read += 1
        return data

    def written(self, data: bytes) -> None:
        self.bytes_written += len(data)
        self.objects_written += 1

    def moved_for_us(self, bytes_read: int, bytes_written: int) -> None:
        """Bytes other processes moved for this one's task (a Spark job's executors and
        driver): counted with this process's own."""
        self.bytes_read += bytes_read
        self.bytes_written += bytes_written


TRAFFIC = ObjectTraffic()  # one per process; tasks run one to a process


class ObjectConflictError(Exception):
    """A key already holds different bytes than the ones being written."""


class ObjectChangedError(Exception):
    """The key no longer holds the version (ETag) that was read: it was rewritten since."""


class CreateOnlyUnsupportedError(RuntimeError):
    """The S3 server ignores ``If-None-Match: *``: create-only writes would overwrite."""


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size: int
    sha256: str
    created: bool  # False when an identical object was already there (an idempotent retry)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """S3 operations Loopline relies on, with errors that name the bucket and key."""

    def __init__(self, client: BaseClient) -> None:
        self.client = client

    def ensure_bucket(self, bucket: str) -> bool:
        """Create `bucket` if missing; return True when it was created."""
        try:
            self.client.head_bucket(Bucket=bucket)
            return False
        except ClientError as exc:
            if _status(exc) not in (404, 400):
                raise
        try:
            self.client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            return False
        return True

    def put_new(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Create `key` with `data`; an identical existing object counts as success."""
        checksum = sha256_hex(data)
        try:
            self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={**(metadata or {}), CHECKSUM_METADATA_KEY: checksum},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if not _key_taken(exc):
                raise
            self._check_taken_key(bucket, key, checksum, exc)
            log.info("s3://%s/%s already holds these exact bytes; nothing to do", bucket, key)
            return StoredObject(bucket, key, len(data), checksum, created=False)
        TRAFFIC.written(data)
        return StoredObject(bucket, key, len(data), checksum, created=True)

    def _check_taken_key(self, bucket: str, key: str, checksum: str, exc: ClientError) -> None:
        """A create-only write found `key` taken: fine when it holds these bytes (a retry),
        else ObjectConflictError. After a 409 the racing write may not have landed yet; this
        write lost the race either way."""
        existing = self.head(bucket, key)
        if existing is None:
            raise ObjectConflictError(
                f"s3://{bucket}/{key}: another create-only write to it is in progress "
                f"({_status(exc)} {_code(exc) or 'conflict'}); this write lost the race"
            ) from exc
        found = self._checksum(bucket, key, existing)
        if found != checksum:
            raise ObjectConflictError(
                f"s3://{bucket}/{key} already exists with sha256 {found}, "
                f"refusing to replace it with different bytes (sha256 {checksum})"
            ) from exc

    @property
    def endpoint(self) -> str:
        """The S3 server this store talks to, for error messages."""
        meta = getattr(self.client, "meta", None)
        return getattr(meta, "endpoint_url", None) or "the default AWS S3 endpoint"

    def verify_create_only(self, bucket: str) -> None:
        """Refuse to go on when the server ignores ``If-None-Match: *`` (some S3 clones and
        older MinIO do), since every create-only write would then silently overwrite.

        Writes a probe key twice with the condition: the second write must be refused. Three
        requests (two PUTs, one DELETE), once per process, endpoint and bucket.
        """
        seen = (self.endpoint, bucket)
        if seen in _HONOURS_CREATE_ONLY:
            return
        with _PROBE_LOCK:
            if seen in _HONOURS_CREATE_ONLY:
                return
            self._probe_create_only(bucket)
            _HONOURS_CREATE_ONLY.add(seen)

    def _probe_create_only(self, bucket: str) -> None:
        key = f"{PROBE_PREFIX}create-only-{uuid.uuid4().hex}"
        try:
            for body in (b"first", b"second"):
                self.client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if not _key_taken(exc):
                raise
            return  # the second write was refused: the condition holds
        finally:
            self._delete_probe(bucket, key)
        raise CreateOnlyUnsupportedError(
            f"the S3 server at {self.endpoint} ignores If-None-Match: * in bucket {bucket} "
            f"(a second create-only write of s3://{bucket}/{key} replaced the first). "
            "Loopline's registry relies on create-only writes to never overwrite a model "
            "version or an alias move; use a server that honours conditional writes"
        )

    def _delete_probe(self, bucket: str, key: str) -> None:
        # A bucket policy may deny deletes (write-once buckets): a leftover probe is harmless.
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            log.warning("could not delete the probe s3://%s/%s: %s", bucket, key, exc)

    def checksum(self, bucket: str, key: str) -> str:
        """The object's sha256: from its metadata when Loopline wrote it, else by reading it."""
        return self._checksum(bucket, key, self.client.head_object(Bucket=bucket, Key=key))

    def _checksum(self, bucket: str, key: str, head: dict[str, Any]) -> str:
        recorded = head.get("Metadata", {}).get(CHECKSUM_METADATA_KEY)
        return recorded or sha256_hex(self.get(bucket, key))

    def put(
        self, bucket: str, key: str, data: bytes, content_type: str, content_encoding: str = ""
    ) -> None:
        """Write `key`, replacing it if present: for derived files such as reports. With a
        `content_encoding` (gzip), `data` is stored compressed and HTTP clients (a browser
        opening a presigned URL) decompress it."""
        self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata={CHECKSUM_METADATA_KEY: sha256_hex(data)},
            **({"ContentEncoding": content_encoding} if content_encoding else {}),
        )
        TRAFFIC.written(data)

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None when it does not exist."""
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise

    def move_verified(
        self, bucket: str, source: str, destination: str, sha256: str | None, *, etag: str = ""
    ) -> bool:
        """Move `source` to `destination`: copy, verify the copy's bytes, then delete.

        Safe to repeat after a crash at any point: a destination already holding these bytes
        is kept, a source already gone is fine when the destination holds it. Returns True
        when this call deleted the source.

        `etag`: the version of `source` whose bytes were read and judged (``get_version``;
        default: the one there now). Only that version is copied (CopySourceIfMatch) and
        deleted (If-Match). A copy this call made that fails verification is deleted again,
        so bytes written to `source` since it was read never stay at `destination`; they stay
        in `source` (ObjectChangedError). `sha256` None: the bytes were never read (a file
        refused for its size); the copy is checked by its ETag instead.
        """
        source_head = self.head(bucket, source)
        if source_head is None:
            if self._verified(bucket, destination, sha256, etag, copied=False):
                return False
            raise FileNotFoundError(
                f"s3://{bucket}/{source} is gone and s3://{bucket}/{destination} does not "
                f"hold its bytes (sha256 {sha256}, ETag {etag or 'unknown'})"
            )
        etag = etag or source_head["ETag"]
        if source_head["ETag"] != etag:
            raise _changed(bucket, source, etag, source_head["ETag"])
        copied = self._copy_version(bucket, source, destination, source_head, sha256)
        if not self._verified(bucket, destination, sha256, etag, copied=copied is not None):
            if copied is None:
                raise ObjectConflictError(
                    f"s3://{bucket}/{destination} does not hold the bytes of "
                    f"s3://{bucket}/{source} (sha256 {sha256}); the source is kept"
                )
            # Our own copy, of bytes that replaced the judged ones between the HEAD and the
            # copy (a server that ignores CopySourceIfMatch): it must not stay.
            self.client.delete_object(Bucket=bucket, Key=destination, IfMatch=copied)
            raise _changed(bucket, source, etag, "other bytes")
        return self._delete_version(bucket, source, etag)

    def _copy_version(
        self,
        bucket: str,
        source: str,
        destination: str,
        source_head: dict[str, Any],
        sha256: str | None,
    ) -> str | None:
        """Copy the version of `source` that `source_head` describes to a free `destination`;
        the copy's ETag, or None when `destination` was already there (a retry)."""
        if self.head(bucket, destination) is not None:
            return None
        metadata = dict(source_head.get("Metadata", {}))
        metadata.pop(CHECKSUM_METADATA_KEY, None)  # an uploader's claim, never checked
        try:
            answer = self.client.copy_object(
                Bucket=bucket,
                Key=destination,
                CopySource={"Bucket": bucket, "Key": source},
                CopySourceIfMatch=source_head["ETag"],
                # S3 computes the copy's SHA-256 itself, so verifying needs no read-back.
                ChecksumAlgorithm="SHA256",
                MetadataDirective="REPLACE",
                ContentType=source_head.get("ContentType", "application/octet-stream"),
                Metadata={**metadata, **({CHECKSUM_METADATA_KEY: sha256} if sha256 else {})},
            )
        except ClientError as exc:
            if _status(exc) == 412:
                raise _changed(bucket, source, source_head["ETag"], "other bytes") from exc
            raise
        return str(answer["CopyObjectResult"]["ETag"])

    def _verified(
        self, bucket: str, key: str, sha256: str | None, etag: str, *, copied: bool
    ) -> bool:
        """`key` holds the judged bytes: by their SHA-256; unread ones by their ETag."""
        if sha256 is not None:
            return self._holds(bucket, key, sha256)
        head = self.head(bucket, key)
        if head is None or not etag:
            return False
        if "-" in etag:  # a multipart ETag is no digest of the bytes, and a copy's differs:
            return copied  # only S3's CopySourceIfMatch vouches for a copy made just now
        return bool(head["ETag"] == etag)  # a single-part copy keeps its MD5 ETag

    def _delete_version(self, bucket: str, source: str, etag: str) -> bool:
        """Delete `source` if it still is `etag`; rewritten since the copy, its new bytes
        stay for the next sweep (the judged ones are at the destination)."""
        try:
            self.client.delete_object(Bucket=bucket, Key=source, IfMatch=etag)
        except ClientError as exc:
            if _status(exc) != 412:
                raise
            log.warning("s3://%s/%s was rewritten after its move: kept", bucket, source)
            return False
        return True

    def _holds(self, bucket: str, key: str, sha256: str) -> bool:
        """True when `key` exists and holds bytes hashing to `sha256`: by the SHA-256 the
        server computed (a full-object one), else by reading the bytes back."""
        try:
            head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        server_side = head.get("ChecksumSHA256")
        if server_side and "-" not in server_side:  # "-N": a composite multipart checksum
            return base64.b64decode(server_side).hex() == sha256
        return sha256_hex(self.get(bucket, key)) == sha256

    def get(self, bucket: str, key: str) -> bytes:
        return TRAFFIC.read(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def get_version(self, bucket: str, key: str, etag: str) -> tuple[bytes, str]:
        """The bytes of `key` and their ETag, only if it still is the version `etag` (a
        HEAD's: so its size is the one checked); else ObjectChangedError. Pass the ETag on
        to ``move_verified``, so that the bytes moved are the bytes that were judged."""
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key, IfMatch=etag)
        except ClientError as exc:
            if _status(exc) != 412:
                raise
            raise _changed(bucket, key, etag, "other bytes") from exc
        return TRAFFIC.read(answer["Body"].read()), str(answer["ETag"])

    def get_if_exists(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is none: one request, not a HEAD then a GET."""
        try:
            return self.get(bucket, key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise

    def metadata(self, bucket: str, key: str) -> dict[str, str]:
        return self.client.head_object(Bucket=bucket, Key=key).get("Metadata", {})

    def copy(self, bucket: str, source: str, destination: str) -> None:
        """A server-side copy within `bucket` (no bytes pass through this process)."""
        copy_source = {"Bucket": bucket, "Key": source}
        self.client.copy_object(Bucket=bucket, Key=destination, CopySource=copy_source)

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        for key, _ in self.list_sizes(bucket, prefix):
            yield key

    def list_sizes(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(key, bytes) of every object under `prefix`, as one listing returns them."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    def list_modified(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """(key, when it was last written) of every object under `prefix`."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"]

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many."""
        return self.delete_keys(bucket, list(self.list_keys(bucket, prefix)))

    def delete_keys(self, bucket: str, keys: list[str]) -> int:
        """Delete `keys`, 1,000 per request; a failure to delete any of them is raised."""
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            answer = self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": chunk, "Quiet": True}
            )
            if answer.get("Errors"):
                raise OSError(f"could not delete from s3://{bucket}: {answer['Errors'][:3]}")
        return len(keys)


def _key_taken(exc: ClientError) -> bool:
    """A create-only PUT found the key taken: 412 when it exists; 409 ConditionalRequestConflict
    (AWS) when another conditional write to it is still in flight."""
    status = _status(exc)
    return status == 412 or (status == 409 and _code(exc) == "ConditionalRequestConflict")


def _changed(bucket: str, key: str, read: str, now: str) -> ObjectChangedError:
    return ObjectChangedError(
        f"s3://{bucket}/{key} changed after it was read (ETag {read}, now {now}): "
        "nothing was moved; the new bytes stay there for the next sweep"
    )


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
