"""Keep the local S3 server's objects across restarts.

The local S3-compatible server (moto) holds objects in memory. ``stack down`` saves every
bucket to the state folder (staged, then swapped in whole) and ``stack up`` restores it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def save(client: Any, snapshot_dir: Path) -> int:
    """Write every object of every bucket under `snapshot_dir`; return the object count."""
    staging = snapshot_dir.with_name(snapshot_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    manifest: dict[str, dict[str, Any]] = {}
    for bucket in (b["Name"] for b in client.list_buckets()["Buckets"]):
        objects = manifest.setdefault(bucket, {})
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                response = client.get_object(Bucket=bucket, Key=item["Key"])
                path = staging / "objects" / bucket / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(response["Body"].read())
                objects[item["Key"]] = {
                    "content_type": response.get("ContentType", "application/octet-stream"),
                    "metadata": response.get("Metadata", {}),
                }
    (staging / MANIFEST).write_text(json.dumps(manifest))
    old = snapshot_dir.with_name(snapshot_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if snapshot_dir.exists():
        snapshot_dir.rename(old)
    staging.rename(snapshot_dir)
    shutil.rmtree(old, ignore_errors=True)
    return sum(len(objects) for objects in manifest.values())


def restore(client: Any, snapshot_dir: Path) -> int:
    """Upload a saved snapshot into an S3 server; return the object count."""
    manifest_path = snapshot_dir / MANIFEST
    if not manifest_path.exists():
        return 0
    manifest = json.loads(manifest_path.read_text())
    count = 0
    for bucket, objects in manifest.items():
        existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        for key, info in objects.items():
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=(snapshot_dir / "objects" / bucket / key).read_bytes(),
                ContentType=info["content_type"],
                Metadata=info["metadata"],
            )
            count += 1
    return count
