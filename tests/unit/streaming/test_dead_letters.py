"""What a dead letter keeps of its record, and how a replay gets the record back: exactly
where the replica kept it, from the preview only where that is exact, never as a guess."""

from __future__ import annotations

import json

from loopline.streaming.dead_letters import KEPT_VALUE_LIMIT, kept_value, preview, recover


def letter(key: bytes | None, value: bytes | None, reason: str, max_bytes: int = 65_536) -> bytes:
    """A letter as a replica writes it (``ScoringConsumer._send_dead_letter``)."""
    body = {"reason": reason, "topic": "in", "partition": 0, "offset": 7, "key": preview(key),
            "value": preview(value), **kept_value(value, max_bytes)}  # fmt: skip
    return json.dumps(body).encode()


def test_a_kept_value_comes_back_byte_for_byte() -> None:
    value = b'{"amount": 1e39, "note": "\xc3\xa9"}' + b" " * 3000  # longer than the preview
    found = recover(b"ev-1", letter(b"ev-1", value, "'amount' is beyond float32's range"))
    assert (found.key, found.value, found.event_id, found.unreplayable) == (
        b"ev-1", value, "ev-1", None,
    )  # fmt: skip


def test_values_a_replica_would_never_score_are_not_kept() -> None:
    assert kept_value(b"x" * 100, max_event_bytes=64) == {"value_b64": None}
    assert kept_value(b"x" * (KEPT_VALUE_LIMIT + 1), max_event_bytes=1_048_576) == {
        "value_b64": None
    }
    oversized = recover(b"big", letter(b"big", b"x" * 100, "oversized: 100 bytes", max_bytes=64))
    assert oversized.value is None
    assert oversized.unreplayable == (
        "its value was not kept when it was dead-lettered (oversized: 100 bytes)"
    )
    empty = recover(b"e", letter(b"e", None, "empty record (no value)"))
    assert empty.unreplayable and empty.unreplayable.startswith("empty record")


def test_an_older_letter_is_replayed_from_its_preview_only_where_that_is_exact() -> None:
    def old(value: str | None, reason: str = "scoring failed") -> bytes:
        return json.dumps({"reason": reason, "key": "k", "value": value}).encode()

    assert recover(b"k", old('{"amount": 3}')).value == b'{"amount": 3}'
    cut = recover(b"k", old("x" * 2000))
    assert cut.unreplayable and "2,000-character preview" in cut.unreplayable
    escaped = recover(b"k", old("\\xff", reason="not UTF-8: invalid start byte at byte 0"))
    assert escaped.unreplayable and escaped.unreplayable.startswith("not UTF-8")


def test_the_event_id_is_the_key_else_the_value_s_event_id() -> None:
    keyless = recover(None, letter(None, b'{"event_id": "e-9", "amount": 1}', "scoring failed"))
    assert keyless.event_id == "e-9" and keyless.unreplayable is None
    anonymous = recover(None, letter(None, b'{"amount": 1}', "no event id"))
    assert anonymous.unreplayable and anonymous.unreplayable.startswith("no event id")
    bad_key = recover(b"\xff", letter(b"\xff", b"{}", "not UTF-8"))
    assert bad_key.unreplayable and "key is not UTF-8" in bad_key.unreplayable
    assert recover(b"k", b"not json").unreplayable == "not a dead letter: its value is not JSON"
