"""The S3 snapshot against a real moto server: incremental syncs, restores, interrupted syncs
and the snapshotter process's life (it stops with its server, and syncs once more on SIGTERM)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from loopline.stack import s3_snapshot
from loopline.stack.config import free_port, stack_s3_client
from loopline.stack.s3_snapshot import (
    MANIFEST,
    OBJECTS,
    PREVIOUS,
    DeletesRefused,
    keep_synced,
    restore,
    save,
)
from support.servers import S3Server


def downloads(client: Any) -> list[str]:
    """The keys `client` GETs from now on."""
    seen: list[str] = []
    client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: seen.append(params["Key"])
    )
    return seen


def manifest(snapshot: Path, name: str = MANIFEST) -> dict[str, dict[str, Any]]:
    return json.loads((snapshot / name).read_text())


def assert_whole(snapshot: Path) -> None:
    """Every object the manifest names is on disk, complete (its bytes match its ETag)."""
    for objects in manifest(snapshot).values():
        for entry in objects.values():
            data = (snapshot / OBJECTS / entry["file"]).read_bytes()
            assert f'"{hashlib.md5(data).hexdigest()}"' == entry["etag"]
            assert len(data) == entry["size"]


def contents(client: Any) -> dict[tuple[str, str], tuple[bytes, str, dict[str, str]]]:
    """(bucket, key) -> (bytes, content type, metadata) of every object on the server."""
    found = {}
    for bucket in (b["Name"] for b in client.list_buckets()["Buckets"]):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                got = client.get_object(Bucket=bucket, Key=item["Key"])
                found[bucket, item["Key"]] = (
                    got["Body"].read(),
                    got["ContentType"],
                    got["Metadata"],
                )
    return found


def test_a_sync_copies_new_and_changed_objects_and_drops_deleted_ones(
    s3: S3Server, tmp_path: Path
) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="one")
    client.create_bucket(Bucket="two")
    for key in ("a", "b", "c", "dir/d"):
        client.put_object(Bucket="one", Key=key, Body=key.encode())
    client.put_object(Bucket="two", Key="e", Body=b"e")
    fetched = downloads(client)

    first = save(client, snapshot)
    assert (first.objects, first.copied, first.removed) == (5, 5, 0)
    assert len(fetched) == 5

    client.put_object(Bucket="one", Key="b", Body=b"b, changed")
    client.delete_object(Bucket="one", Key="c")
    client.put_object(Bucket="two", Key="f", Body=b"f")
    fetched.clear()
    second = save(client, snapshot)
    assert (second.objects, second.copied, second.removed) == (5, 2, 1)
    assert sorted(fetched) == ["b", "f"]  # the unchanged a, dir/d and e are not read again
    assert set(manifest(snapshot)["one"]) == {"a", "b", "dir/d"}
    assert_whole(snapshot)
    # The files of this sync and of the one before (c and the old b, kept as a backup).
    assert set(manifest(snapshot, PREVIOUS)["one"]) == {"a", "b", "c", "dir/d"}
    assert len(list((snapshot / OBJECTS).iterdir())) == 7

    fetched.clear()
    third = save(client, snapshot)
    assert (third.objects, third.copied, third.removed, fetched) == (5, 0, 0, [])


def test_restore_round_trips_bytes_content_type_and_metadata(s3: S3Server, tmp_path: Path) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="data")
    client.create_bucket(Bucket="empty")
    objects = {
        "plain.txt": (b"hello", "text/plain", {}),
        "models/m/saved_model.pb": (os.urandom(3 << 20), "application/octet-stream", {}),
        "meta.json": (b"{}", "application/json", {"sha256": "abc", "run-id": "r1"}),
        "folder/": (b"", "application/x-directory", {}),  # a folder marker: no file name
        "../dots/ and spaces é": (b"odd key", "text/plain", {}),
        "folder/inside": (b"beside a key that is its prefix", "text/plain", {}),
    }
    for key, (body, content_type, metadata) in objects.items():
        client.put_object(
            Bucket="data", Key=key, Body=body, ContentType=content_type, Metadata=metadata
        )
    before = contents(client)
    assert save(client, snapshot).objects == len(objects)

    s3.reset()  # a fresh, empty server
    assert restore(client, snapshot) == len(objects)
    assert contents(client) == before
    assert {b["Name"] for b in client.list_buckets()["Buckets"]} == {"data", "empty"}
    fetched = downloads(client)
    assert save(client, snapshot).copied == 0  # restored objects keep their ETags
    assert fetched == []


def test_an_interrupted_sync_leaves_the_last_snapshot_whole(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="bkt")
    client.put_object(Bucket="bkt", Key="kept", Body=b"v1")
    client.put_object(Bucket="bkt", Key="changed", Body=b"v1")
    save(client, snapshot)
    before = contents(client)
    client.put_object(Bucket="bkt", Key="changed", Body=b"v2")
    client.put_object(Bucket="bkt", Key="new", Body=b"v2")
    client.delete_object(Bucket="bkt", Key="kept")

    write = s3_snapshot._write_atomically

    def crash_on_the_manifest(path: Path, chunks: Any) -> None:
        if path.name == MANIFEST:
            raise KeyboardInterrupt("killed before the manifest was written")
        write(path, chunks)

    monkeypatch.setattr(s3_snapshot, "_write_atomically", crash_on_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        save(client, snapshot)
    monkeypatch.undo()
    assert_whole(snapshot)  # the new files are there, unnamed; the old ones too

    def crash_on_the_second_download(**_: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed while downloading")

    calls: list[int] = []
    client.meta.events.register("before-call.s3.GetObject", crash_on_the_second_download)
    with pytest.raises(KeyboardInterrupt):
        save(client, snapshot)
    client.meta.events.unregister("before-call.s3.GetObject", crash_on_the_second_download)
    assert_whole(snapshot)

    s3.reset()
    restore(client, snapshot)
    assert contents(client) == before  # the last complete sync, exactly


def test_a_snapshot_of_the_older_layout_is_restored_then_converted(
    s3: S3Server, tmp_path: Path
) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    (snapshot / OBJECTS / "old" / "x").mkdir(parents=True)
    (snapshot / OBJECTS / "old" / "x" / "y.csv").write_bytes(b"a,b\n")
    legacy = {"old": {"x/y.csv": {"content_type": "text/csv", "metadata": {"k": "v"}}}}
    (snapshot / MANIFEST).write_text(json.dumps(legacy))

    assert restore(client, snapshot) == 1
    assert contents(client) == {("old", "x/y.csv"): (b"a,b\n", "text/csv", {"k": "v"})}
    assert save(client, snapshot).copied == 1
    assert not (snapshot / OBJECTS / "old").exists()
    assert_whole(snapshot)


def test_the_snapshotter_stops_with_its_server_and_skips_cycles_it_cannot_reach(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = stack_s3_client(f"http://127.0.0.1:{free_port()}", retries={"max_attempts": 0})
    answers = iter([True, True, False])
    caplog.set_level(logging.INFO, logger=s3_snapshot.__name__)
    keep_synced(nobody, tmp_path / "s3", 0.05, lambda: next(answers))
    skipped = [r for r in caplog.records if r.message.startswith("sync skipped")]
    assert len(skipped) == 2 and "EndpointConnectionError" in skipped[0].message
    assert caplog.records[-1].message == "the S3 server has exited; stopping"
    assert not (tmp_path / "s3" / MANIFEST).exists()


def snapshotter(s3: S3Server, snapshot: Path, every: float, server_pid: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "loopline.stack.s3_snapshot", "--endpoint", s3.endpoint),
            *("--dir", str(snapshot), "--every", str(every), "--server-pid", str(server_pid)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_snapshotter_syncs_once_more_on_sigterm(s3: S3Server, tmp_path: Path) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="bkt")
    client.put_object(Bucket="bkt", Key="first", Body=b"1")
    process = snapshotter(s3, snapshot, 60, s3.process.pid)
    deadline = time.monotonic() + 20
    while not (snapshot / MANIFEST).exists():  # its first sync, at start
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    client.put_object(Bucket="bkt", Key="second", Body=b"2")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert set(manifest(snapshot)["bkt"]) == {"first", "second"}


def test_the_snapshotter_of_a_server_already_gone_touches_nothing(
    s3: S3Server, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="bkt")
    gone = subprocess.Popen(["true"])
    gone.wait()
    process = snapshotter(s3, tmp_path / "s3", 0.1, gone.pid)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0 and output == ""
    assert not (tmp_path / "s3").exists()


def test_a_wipe_or_a_mass_delete_is_not_synced_without_allow_deletes(
    s3: S3Server, tmp_path: Path
) -> None:
    """A wiped (or vandalised) server must not wipe its backup: the sync is refused, the
    snapshot restores what was there, and only an explicit allow_deletes accepts it."""
    client, snapshot = s3.client(), tmp_path / "s3"
    for bucket in ("data", "models"):
        client.create_bucket(Bucket=bucket)
        for key in ("a", "b", "c"):
            client.put_object(Bucket=bucket, Key=key, Body=f"{bucket}/{key}".encode())
    save(client, snapshot)
    before, saved = contents(client), manifest(snapshot)

    for key in ("a", "b", "c"):
        client.delete_object(Bucket="models", Key=key)
    client.delete_object(Bucket="data", Key="a")  # 4 of 6 objects gone
    with pytest.raises(DeletesRefused, match="4 of 6 objects"):
        save(client, snapshot)
    assert manifest(snapshot) == saved
    client.delete_bucket(Bucket="models")
    with pytest.raises(DeletesRefused, match=r"bucket.* models"):
        save(client, snapshot)
    assert manifest(snapshot) == saved

    s3.reset()  # the wipe moto's /moto-api/reset does
    with pytest.raises(DeletesRefused):
        save(client, snapshot)
    assert restore(client, snapshot) == 6
    assert contents(client) == before

    client.delete_object(Bucket="data", Key="a")
    for key in ("a", "b", "c"):
        client.delete_object(Bucket="models", Key=key)
    done = save(client, snapshot, allow_deletes=True)
    assert (done.objects, done.removed) == (2, 4)
    assert manifest(snapshot, PREVIOUS) == saved  # the generation before stays restorable


def test_the_previous_generation_is_kept_until_the_next_sync_replaces_it(
    s3: S3Server, tmp_path: Path
) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="bkt")
    client.put_object(Bucket="bkt", Key="model", Body=b"v1")
    client.put_object(Bucket="bkt", Key="data", Body=b"d")
    save(client, snapshot)
    first = contents(client)
    client.put_object(Bucket="bkt", Key="model", Body=b"v2 (a bad one)")
    save(client, snapshot)

    s3.reset()
    assert restore(client, snapshot, previous=True) == 2
    assert contents(client) == first  # v1, from the generation before

    client.put_object(Bucket="bkt", Key="model", Body=b"v3")
    save(client, snapshot)  # previous = v2's generation; v1's files are dropped
    client.put_object(Bucket="bkt", Key="model", Body=b"v4")
    save(client, snapshot)  # previous = v3's generation; v2's files are dropped
    named = {
        e["file"] for name in (MANIFEST, PREVIOUS) for e in manifest(snapshot, name)["bkt"].values()
    }
    assert {p.name for p in (snapshot / OBJECTS).iterdir()} == named
    assert len(named) == 3  # data, v3, v4


def test_the_snapshot_is_readable_by_its_owner_only(s3: S3Server, tmp_path: Path) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="bkt")
    client.put_object(Bucket="bkt", Key="model", Body=b"weights")
    save(client, snapshot)
    save(client, snapshot)
    client.put_object(Bucket="bkt", Key="other", Body=b"x")
    save(client, snapshot)
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o700
    for path in [snapshot / MANIFEST, snapshot / PREVIOUS, *(snapshot / OBJECTS).iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_snapshotter_says_why_it_holds_back_a_wipe(
    s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, snapshot = s3.client(), tmp_path / "s3"
    client.create_bucket(Bucket="bkt")
    client.put_object(Bucket="bkt", Key="model", Body=b"weights")
    save(client, snapshot)
    saved = manifest(snapshot)
    s3.reset()
    caplog.set_level(logging.INFO, logger=s3_snapshot.__name__)
    answers = iter([True, False])
    keep_synced(client, snapshot, 0.05, lambda: next(answers))
    [refused] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "bucket(s) bkt" in refused.message and "--allow-deletes" in refused.message
    assert manifest(snapshot) == saved
