"""Keep the local S3 server's objects across restarts and crashes.

The local S3-compatible server (moto) holds objects in memory. While the stack runs, a
snapshotter process (``python -m loopline.stack.s3_snapshot``, started by ``stack up``) syncs
it to the state folder every few seconds; ``stack down`` syncs once more and ``stack up``
restores the snapshot into a fresh server. A sync copies only objects whose ETag changed.

Layout: ``manifest.json`` ({bucket: {key: {file, etag, size, content_type, metadata}}}) and
``objects/<file>``, one file per object version, named by a hash of bucket, key and ETag. A
sync writes new files first (temp name, then renamed), then the manifest (the same way), and
only then deletes the files no manifest names: whenever it stops, the manifest on disk names
complete files only, and the objects it describes are those of one sync.

A backup, not a mirror: the manifest a sync replaces is kept as ``manifest.previous.json``
with its files (only the generation before it is dropped), and a sync that would delete more
than half of the saved objects, or a whole bucket, is refused (`DeletesRefused`) until someone
runs ``loopline stack snapshot --allow-deletes``: a wiped or vandalised server does not wipe
its backup.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from loopline.runtime.files import sync_folder_entries, write_stream_atomically

if TYPE_CHECKING:
    from botocore.client import BaseClient

MANIFEST = "manifest.json"
PREVIOUS = "manifest.previous.json"  # the generation before MANIFEST, files included
OBJECTS = "objects"
CHUNK = 1 << 20

log = logging.getLogger(__name__)

Manifest = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class SyncResult:
    objects: int  # on the server, now all in the snapshot
    copied: int  # new or changed since the last sync
    removed: int  # gone from the server since the last sync


class DeletesRefused(Exception):
    """A sync that would delete a bucket or most objects from the snapshot; nothing changed."""


Listing = dict[str, dict[str, tuple[str, int]]]  # bucket -> key -> (etag, size)


def save(client: BaseClient, snapshot_dir: Path, allow_deletes: bool = False) -> SyncResult:
    """One incremental sync of every bucket of the server into `snapshot_dir`.

    Raises `DeletesRefused`, leaving the snapshot as it was, when the server has lost a bucket
    or more than half of the saved objects, unless `allow_deletes`."""
    objects_dir = snapshot_dir / OBJECTS
    objects_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(snapshot_dir):
        old = _read_manifest(snapshot_dir / MANIFEST)
        listed: Listing = {
            bucket: {key: (etag, size) for key, etag, size in _listing(client, bucket)}
            for bucket in (b["Name"] for b in client.list_buckets()["Buckets"])
        }
        if not allow_deletes:
            _refuse_mass_deletes(old, listed)
        new, copied = _copy_changed(client, old, listed, objects_dir)
        if new != old:
            _replace_manifest(snapshot_dir, old, new)
    gone = sum(len(keys.keys() - new.get(bucket, {}).keys()) for bucket, keys in old.items())
    return SyncResult(sum(len(keys) for keys in new.values()), copied, gone)


def _refuse_mass_deletes(old: Manifest, listed: Listing) -> None:
    saved = sum(len(keys) for keys in old.values())
    gone = sum(len(keys.keys() - listed.get(bucket, {}).keys()) for bucket, keys in old.items())
    vanished = sorted(old.keys() - listed.keys())
    if vanished or 2 * gone > saved:
        what = f"bucket(s) {', '.join(vanished)}" if vanished else f"{gone} of {saved} objects"
        raise DeletesRefused(
            f"refusing to sync: {what} gone from the S3 server since the last sync (a wipe?); "
            "the snapshot keeps them and new writes are not saved until this is resolved. "
            "If the deletions are wanted: loopline stack snapshot --allow-deletes"
        )


def _copy_changed(
    client: BaseClient, old: Manifest, listed: Listing, objects_dir: Path
) -> tuple[Manifest, int]:
    new: Manifest = {}
    copied = 0
    for bucket, keys in listed.items():
        saved, entries = old.get(bucket, {}), new.setdefault(bucket, {})
        for key, (etag, size) in keys.items():
            entry = saved.get(key)
            if entry is None or not _unchanged(entry, etag, size, objects_dir):
                entry = _download(client, bucket, key, objects_dir)
                if entry is None:  # deleted since the listing
                    continue
                copied += 1
            entries[key] = entry
    return new, copied


def _replace_manifest(snapshot_dir: Path, old: Manifest, new: Manifest) -> None:
    """`new` becomes the manifest and `old` the previous generation; files named by neither
    (the generation before, temp files of an interrupted sync) are deleted."""
    objects_dir = snapshot_dir / OBJECTS
    sync_folder_entries(objects_dir)  # the new files' names are on disk before the manifest
    # Previous first: a crash between the two writes leaves both naming the old generation.
    previous = _current_layout(old)
    if previous:
        _write_atomically(snapshot_dir / PREVIOUS, [json.dumps(previous).encode()])
    _write_atomically(snapshot_dir / MANIFEST, [json.dumps(new).encode()])
    sync_folder_entries(snapshot_dir)
    _delete_unnamed(objects_dir, _files(new) | _files(previous))


def _current_layout(manifest: Manifest) -> Manifest:
    """`manifest` without entries of the older per-bucket layout (their files are removed)."""
    return {b: {k: e for k, e in keys.items() if "file" in e} for b, keys in manifest.items()}


def _files(manifest: Manifest) -> set[str]:
    return {e["file"] for keys in manifest.values() for e in keys.values() if "file" in e}


def restore(client: BaseClient, snapshot_dir: Path, previous: bool = False) -> int:
    """Upload a saved snapshot (`previous`: the generation before the last sync) into an S3
    server; return the object count."""
    path = snapshot_dir / (PREVIOUS if previous else MANIFEST)
    if not path.exists():
        return 0
    with _locked(snapshot_dir):
        manifest = _read_manifest(path)
        existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
        for bucket, objects in manifest.items():
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
            for key, entry in objects.items():
                # Snapshots written before syncs were incremental keep objects/<bucket>/<key>.
                name = entry["file"] if "file" in entry else Path(bucket, key)
                with (snapshot_dir / OBJECTS / name).open("rb") as body:
                    client.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=body,
                        ContentType=entry["content_type"],
                        Metadata=entry["metadata"],
                    )
    return sum(len(objects) for objects in manifest.values())


def _listing(client: BaseClient, bucket: str) -> Iterator[tuple[str, str, int]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield item["Key"], item["ETag"], item["Size"]


def _unchanged(entry: dict[str, Any], etag: str, size: int, objects_dir: Path) -> bool:
    return (entry.get("etag"), entry.get("size")) == (etag, size) and (
        objects_dir / entry["file"]
    ).exists()


def _download(
    client: BaseClient, bucket: str, key: str, objects_dir: Path
) -> dict[str, Any] | None:
    """Copy one object to its own file; None when it was deleted since the listing."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchKey":
            return None
        raise
    # The ETag of the bytes read, not the listed one: the object may have changed since.
    etag = response["ETag"]
    name = hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode()).hexdigest()
    with contextlib.closing(response["Body"]) as body:
        _write_atomically(objects_dir / name, iter(lambda: body.read(CHUNK), b""))
    return {
        "file": name,
        "etag": etag,
        "size": response["ContentLength"],
        "content_type": response.get("ContentType", "application/octet-stream"),
        "metadata": response.get("Metadata", {}),
    }


def _read_manifest(path: Path) -> Manifest:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """A crash or a power cut leaves the old file or the new one, never part of one; owner-only
    whatever the umask: the snapshot holds every object, models included."""
    # Each file's bytes are fsync'd; the folder once per sync (_replace_manifest), not per file.
    write_stream_atomically(path, chunks, private=True, sync_folder=False)


def _delete_unnamed(objects_dir: Path, named: set[str]) -> None:
    """Files of objects deleted or changed, temp files of an interrupted sync, and the
    per-bucket folders of the older layout."""
    for path in objects_dir.iterdir():
        if path.name not in named:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(snapshot_dir: Path) -> Iterator[None]:
    """One sync or restore at a time per folder (the snapshotter and `stack down`)."""
    snapshot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    snapshot_dir.chmod(0o700)  # a snapshot from an older version was 0755
    with (snapshot_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ------------------------------------------------------------------------- the snapshotter
def keep_synced(
    client: BaseClient, snapshot_dir: Path, every: float, server_alive: Callable[[], bool]
) -> None:
    """Sync every `every` seconds (start to start) until the server is gone; on SIGTERM, sync
    once more and return. An object is on disk at most `every` plus one sync after its PUT."""
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            last = stopping
            # Never sync once our server has gone: a server started after it (a crash, then
            # `stack up`) answers on the same port, empty at first, and mirroring it would
            # delete the snapshot that `stack up` restores from. Its own snapshotter takes over.
            if not server_alive():
                log.info("the S3 server has exited; stopping")
                return
            started = time.monotonic()
            _sync_logged(client, snapshot_dir, started)
            if last:
                return
            while not stopping and (left := started + every - time.monotonic()) > 0:
                time.sleep(min(left, 0.2))  # short naps: SIGTERM does not cut a sleep short
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sync_logged(client: BaseClient, snapshot_dir: Path, started: float) -> None:
    try:
        result = save(client, snapshot_dir)
    except (BotoCoreError, ClientError, OSError) as error:  # not answering: try next cycle
        log.warning("sync skipped: %s: %s", type(error).__name__, error)
        return
    except DeletesRefused as refused:  # said every cycle until someone decides
        log.error("%s", refused)
        return
    if result.copied or result.removed:
        log.info(
            "synced %d objects (%d copied, %d removed) in %.3f s",
            result.objects,
            result.copied,
            result.removed,
            time.monotonic() - started,
        )


def _alive(server: psutil.Process) -> bool:
    try:  # is_running() also notices a pid reused by another process
        return bool(server.is_running() and server.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def main(argv: list[str] | None = None) -> int:
    from loopline.stack.config import stack_s3_client

    parser = argparse.ArgumentParser(description="Sync the local S3 server to a folder.")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between syncs")
    parser.add_argument("--server-pid", type=int, required=True, help="stop when it exits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = psutil.Process(args.server_pid)
    except psutil.NoSuchProcess:
        return 0
    # A server that is gone fails the cycle at once, without retries and their back-off.
    client = stack_s3_client(args.endpoint, connect_timeout=2, retries={"max_attempts": 1})
    keep_synced(client, args.dir, args.every, lambda: _alive(server))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
