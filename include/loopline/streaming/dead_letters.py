"""What a dead letter holds, and how the event it stands for is recovered for a replay.

A replica dead-letters a record as a JSON object: the reason, where the record was read
(topic, partition, offset), and a readable preview of its key and value (UTF-8 text, at most
2,000 characters: for people and ``loopline stream tail``). The preview is not the event: it
is cut, and bytes that are not UTF-8 are escaped. So the replicas also keep the value's exact
bytes, base64, in ``value_b64``, for every value no larger than ``streaming.max_event_bytes``
(the largest event a replica scores) and ``KEPT_VALUE_LIMIT`` (so that a letter stays under
Kafka's default 1 MiB record limit: a letter the broker refused would stop its replica's
commits). An oversized value is dead-lettered with ``value_b64: null``: its bytes were never
an event a replica would score. The dead letter's Kafka key is the record's key, unchanged.

Letters written before ``value_b64`` existed are recovered from their preview where that is
exact: a value under the preview's cut and valid UTF-8 (anything else is reported, never
replayed as a guess).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

PREVIEW_CHARS = 2000
# base64 grows 4/3: 716,800 bytes become 955,736, leaving room under 1,048,576 for the
# preview (escaped at most 6x), the reason and the headers.
KEPT_VALUE_LIMIT = 700 * 1024


def preview(data: bytes | None) -> str | None:
    """Readable text of a key or value: cut, non-UTF-8 bytes escaped."""
    if data is None:
        return None
    return data.decode("utf-8", errors="backslashreplace")[:PREVIEW_CHARS]


def kept_value(value: bytes | None, max_event_bytes: int) -> dict[str, str | None]:
    """The ``value_b64`` field of a letter: the exact bytes, when a replay could score them."""
    if value is None or len(value) > min(max_event_bytes, KEPT_VALUE_LIMIT):
        return {"value_b64": None}
    return {"value_b64": base64.b64encode(value).decode("ascii")}


@dataclass(frozen=True)
class Recovered:
    """The event a dead letter stands for, as a record to produce again; or why not."""

    key: bytes | None
    value: bytes | None
    event_id: str | None  # what its prediction would be keyed by
    unreplayable: str | None = None  # why it cannot be replayed; None: it can

    @classmethod
    def refused(cls, key: bytes | None, why: str) -> Recovered:
        return cls(key, None, _key_text(key), why)


def recover(key: bytes | None, letter_value: bytes | None) -> Recovered:
    """The original record of a dead letter (its Kafka key and value)."""
    try:
        letter = json.loads(letter_value or b"")
    except (ValueError, RecursionError):
        return Recovered.refused(key, "not a dead letter: its value is not JSON")
    if not isinstance(letter, dict) or "reason" not in letter:
        return Recovered.refused(key, "not a dead letter: no reason in it")
    value_or_why = _original_value(letter)
    if isinstance(value_or_why, str):
        return Recovered.refused(key, value_or_why)
    if key and _key_text(key) is None:
        return Recovered.refused(key, "its key is not UTF-8: a replica would dead-letter it again")
    event_id = _key_text(key) or _event_id_in(value_or_why)
    if not event_id:
        return Recovered.refused(
            key, "no event id (no key and no event_id in the value): a replica would "
            "dead-letter it again"
        )  # fmt: skip
    return Recovered(key, value_or_why, event_id)


def _original_value(letter: dict[str, Any]) -> bytes | str:
    """The value's bytes, or (a str) why they are not in the letter."""
    reason = str(letter.get("reason", ""))
    if "value_b64" in letter:  # written by a replica that keeps values
        kept = letter["value_b64"]
        if kept is None:
            why = "empty record" if letter.get("value") is None else "its value was not kept"
            return f"{why} when it was dead-lettered ({reason[:120]})"
        try:
            return base64.b64decode(kept, validate=True)
        except (binascii.Error, TypeError):
            return "value_b64 is not base64"
    text = letter.get("value")
    if text is None:
        return "empty record (no value) when it was dead-lettered"
    if not isinstance(text, str) or len(text) >= PREVIEW_CHARS:
        return (
            f"only a {PREVIEW_CHARS:,}-character preview was kept (dead-lettered before the "
            "replicas kept whole values)"
        )
    if reason.startswith("not UTF-8"):
        return (
            "not UTF-8: only an escaped preview was kept (dead-lettered before the replicas "
            "kept whole values)"
        )
    return text.encode("utf-8")


def _key_text(key: bytes | None) -> str | None:
    try:
        return key.decode("utf-8") or None if key else None
    except UnicodeDecodeError:
        return None


def _event_id_in(value: bytes) -> str | None:
    try:
        payload = json.loads(value)
    except (ValueError, RecursionError):
        return None
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    return str(event_id) if event_id else None
