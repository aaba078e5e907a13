"""The gate on a real S3 server against files that would take the task down: a file too large
to read is quarantined unread, a bomb is quarantined in bounded memory, a file whose
validation got its task killed twice is quarantined, and the files behind them still pass."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import tracemalloc

import pytest
from botocore.exceptions import ClientError
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.validation import gate
from loopline.validation.gate import validate_and_route
from support.bombs import GIB, gzip_bomb, parquet_of_many_rows
from support.paths import PIPELINES
from support.validated_data import everything

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
DATA = SPEC.data
BUCKET = DATA.bucket
DAY = f"{DATA.landing_prefix}dt=2026-11-23/"
MIB = 1 << 20


@pytest.fixture
def reads(store, monkeypatch) -> list[str]:
    """The keys this test's store GETs, read for real from the server."""
    keys: list[str] = []
    get_object = store.client.get_object

    def recorded(**kwargs):
        keys.append(kwargs["Key"])
        return get_object(**kwargs)

    monkeypatch.setattr(store.client, "get_object", recorded)
    return keys


def land(store: ObjectStore, name: str, data: bytes) -> str:
    store.put_new(BUCKET, DAY + name, data)
    return DAY + name


def good(name: str = "z-good.parquet") -> tuple[str, bytes]:
    return name, encode(generate(300, seed=5), name.rsplit(".", 1)[-1])


def report_of(store: ObjectStore, result) -> dict:
    return json.loads(store.get(BUCKET, result.report_key))


def test_a_gzip_bomb_is_quarantined_as_too_large_and_the_file_behind_it_passes(
    store, suite
) -> None:
    """1 GiB of zeros in 1 MB, under the spec's default limits, then a good file."""
    bomb = land(store, "a-bomb.csv.gz", gzip_bomb())
    after = land(store, *good())
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = validate_and_route(store, DATA, suite, bomb)
        took, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not result.passed and result.destination.startswith(DATA.quarantine_prefix)
    unreadable = report_of(store, result)["unreadable"]
    assert unreadable["kind"] == "too large"
    assert unreadable["compressed_bytes"] == len(gzip_bomb())
    assert unreadable["max_decompressed_bytes"] == 100 * len(gzip_bomb())
    assert sha256_hex(store.get(BUCKET, result.destination)) == sha256_hex(gzip_bomb())
    assert peak < GIB / 4, f"peak {peak / MIB:.0f} MiB"
    print(f"\ngate on the gzip bomb: {took:.2f} s, peak traced {peak / MIB:.0f} MiB")
    assert validate_and_route(store, DATA, suite, after).passed
    assert not [k for k in everything(store) if k.startswith(DATA.landing_prefix)]


def test_an_object_over_the_size_limit_is_quarantined_without_being_read(
    store, suite, reads
) -> None:
    from loopline.data.reading import ReadLimits

    limits = ReadLimits.of(SPEC.validation.model_copy(update={"max_file_mib": 1 / 64}))
    name, data = good("big.csv")
    key = land(store, name, data)
    assert len(data) > 16 * 1024

    result = validate_and_route(store, DATA, suite, key, limits=limits)

    assert not result.passed and key not in reads  # the size came from a HEAD
    unreadable = report_of(store, result)["unreadable"]
    assert unreadable == {
        "kind": "too large",
        "reason": unreadable["reason"],
        "object_bytes": len(data),
        "max_file_bytes": 16 * 1024,
    }
    assert "validation.max_file_mib" in unreadable["reason"]
    assert store.get(BUCKET, result.destination) == data  # quarantined byte-identical
    assert result.sha256 is None  # never read, so never hashed here
    again = validate_and_route(store, DATA, suite, key, limits=limits)
    assert again.already_routed and again.reasons == result.reasons


def test_a_parquet_footer_claiming_too_many_rows_is_quarantined(store, suite) -> None:
    key = land(store, "many.parquet", parquet_of_many_rows())
    result = validate_and_route(store, DATA, suite, key)
    unreadable = report_of(store, result)["unreadable"]
    assert (unreadable["kind"], unreadable["footer_rows"]) == ("too large", 100_000_000)
    assert any("validation.max_rows" in reason for reason in result.reasons)


def killed_while_validating(s3, suite, key: str) -> None:
    """Validate `key` in a forked process that is SIGKILLed while it reads the file, as the
    kernel's OOM killer would: no exception, no except clause, no finally."""

    def validate_then_die() -> None:
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        gate.read_batch = die  # the forked child's own module: the parent keeps the real one
        validate_and_route(ObjectStore(s3.client()), DATA, suite, key)

    child = multiprocessing.get_context("fork").Process(target=validate_then_die)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL


def test_a_file_that_got_its_task_killed_twice_is_quarantined(s3, store, suite, reads) -> None:
    key = land(store, "a-killer.csv", encode(generate(300, seed=6), "csv"))
    after = land(store, *good())
    killed_while_validating(s3, suite, key)
    killed_while_validating(s3, suite, key)
    assert key in everything(store)  # two deaths: still in landing, nothing routed

    result = validate_and_route(store, DATA, suite, key)

    assert not result.passed and key not in reads  # quarantined unread
    unreadable = report_of(store, result)["unreadable"]
    assert (unreadable["kind"], unreadable["crashed_attempts"]) == ("crashed", 2)
    assert validate_and_route(store, DATA, suite, after).passed  # the file behind it
    assert not [k for k in everything(store) if "/attempts/" in k]  # markers cleared


def test_one_killed_attempt_is_retried(s3, store, suite) -> None:
    key = land(store, *good())
    killed_while_validating(s3, suite, key)
    from loopline.validation.attempts import attempts_root

    marker_key = f"{attempts_root(DATA)}dt=2026-11-23/z-good.parquet.json"
    assert marker_key == "card_fraud/attempts/dt=2026-11-23/z-good.parquet.json"
    marker = json.loads(store.get(BUCKET, marker_key))
    assert marker["attempts"] == 1  # written before the file was read, so it outlived it
    assert validate_and_route(store, DATA, suite, key).passed


def test_a_file_landed_again_starts_its_count_afresh(s3, store, suite) -> None:
    key = land(store, "again.parquet", b"first version, never read")
    killed_while_validating(s3, suite, key)
    killed_while_validating(s3, suite, key)
    store.put(BUCKET, key, good()[1], "application/octet-stream")  # landed again: a new ETag
    assert validate_and_route(store, DATA, suite, key).passed


def test_an_s3_error_is_not_counted_as_a_crash(store, suite, monkeypatch) -> None:
    """S3 out twice in a row must not quarantine a good file."""
    key = land(store, *good())

    get_object = store.client.get_object

    def s3_down(**kwargs):  # only for the landed file, after its marker was written
        if kwargs["Key"] == key:
            raise ClientError({"Error": {"Code": "SlowDown"}}, "GetObject")
        return get_object(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(store.client, "get_object", s3_down)
        for _ in range(3):
            with pytest.raises(ClientError):
                validate_and_route(store, DATA, suite, key)
    assert validate_and_route(store, DATA, suite, key).passed
