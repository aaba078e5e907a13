"""A small, explicit object store over a boto3 S3 client.

Writes are create-only by default (``If-None-Match: *``): a key is written once, a retry that
brings the same bytes is a no-op, and different bytes for an existing key are an error rather
than a silent overwrite. A single PUT is atomic on S3: readers see all of an object or none.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

CHECKSUM_METADATA_KEY = "sha256"


class ObjectConflictError(Exception):
    """A key already holds different bytes than the ones being written."""


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

    def __init__(self, client: Any) -> None:
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
            if _status(exc) != 412:
                raise
            existing = self.checksum(bucket, key)
            if existing != checksum:
                raise ObjectConflictError(
                    f"s3://{bucket}/{key} already exists with sha256 {existing}, "
                    f"refusing to replace it with different bytes (sha256 {checksum})"
                ) from exc
            log.info("s3://%s/%s already holds these exact bytes; nothing to do", bucket, key)
            return StoredObject(bucket, key, len(data), checksum, created=False)
        return StoredObject(bucket, key, len(data), checksum, created=True)

    def checksum(self, bucket: str, key: str) -> str:
        """The object's sha256: from its metadata when Loopline wrote it, else by reading it."""
        head = self.client.head_object(Bucket=bucket, Key=key)
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

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None when it does not exist."""
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise

    def move_verified(self, bucket: str, source: str, destination: str, sha256: str) -> bool:
        """Move `source` to `destination`: copy, verify the copy's bytes, then delete.

        Safe to repeat after a crash at any point: a destination already holding these bytes
        is kept, a source already gone is fine when the destination holds it. Returns True
        when this call deleted the source. The source is deleted only if it is still the
        object that was verified (If-Match on its ETag).
        """
        source_head = self.head(bucket, source)
        if source_head is None:
            if self._holds(bucket, destination, sha256):
                return False
            raise FileNotFoundError(
                f"s3://{bucket}/{source} is gone and s3://{bucket}/{destination} does not "
                f"hold its bytes (sha256 {sha256})"
            )
        if self.head(bucket, destination) is None:
            self.client.copy_object(
                Bucket=bucket,
                Key=destination,
                CopySource={"Bucket": bucket, "Key": source},
                CopySourceIfMatch=source_head["ETag"],
                # S3 computes the copy's SHA-256 itself, so verifying needs no read-back.
                ChecksumAlgorithm="SHA256",
                MetadataDirective="REPLACE",
                ContentType=source_head.get("ContentType", "application/octet-stream"),
                Metadata={**source_head.get("Metadata", {}), CHECKSUM_METADATA_KEY: sha256},
            )
        if not self._holds(bucket, destination, sha256):
            raise ObjectConflictError(
                f"s3://{bucket}/{destination} does not hold the bytes of s3://{bucket}/{source} "
                f"(sha256 {sha256}); the source is kept"
            )
        self.client.delete_object(Bucket=bucket, Key=source, IfMatch=source_head["ETag"])
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
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

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


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
