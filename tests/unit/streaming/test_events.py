"""Feature events read strictly: every way an event cannot be scored has its own reason."""

from __future__ import annotations

import json

import pytest
from loopline.spec import load_spec
from loopline.streaming.events import Event, Poison, features_table, parse_event
from support.paths import PIPELINES

MODEL = load_spec(PIPELINES / "card_fraud.yaml").model
GOOD = {name: 1.5 for name in MODEL.features.numeric} | {
    name: "web" for name in MODEL.features.categorical
}


def parse(value: bytes | None, key: bytes | None = b"e1", max_bytes: int = 65_536):
    return parse_event(key, value, 1_000, MODEL, max_bytes)


def test_a_good_event_keeps_its_id_features_and_time() -> None:
    event = parse(json.dumps({**GOOD, "extra": "ignored"}).encode())
    assert isinstance(event, Event)
    assert (event.event_id, event.created_ms) == ("e1", 1_000)
    assert set(event.features) == set(MODEL.features.all)
    table = features_table([event, event], MODEL)
    assert table.num_rows == 2 and table.schema.field("amount").type == "float"


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (None, b"e1", "empty record (no value)"),
        (b"{", b"e1", "not JSON: Expecting property name enclosed in double quotes at line 1"),
        (b"\xff", b"e1", "not UTF-8: invalid start byte at byte 0"),
        (b"42", b"e1", "not a JSON object: a int"),
        (json.dumps(GOOD).encode(), None, "no event id: the record has no key"),
        (json.dumps({**GOOD, "amount": True}).encode(), b"e1", "'amount' is not a number: bool"),
        (json.dumps({**GOOD, "channel": 3}).encode(), b"e1", "'channel' is not a string: int '3'"),
        (json.dumps({**GOOD, "v1": None}).encode(), b"e1", "'v1' is null"),
        (b'{"v1": NaN}', b"e1", "'v1' is not finite"),
    ],
)
def test_each_poison_names_its_reason(value, key, reason) -> None:
    poison = parse(value, key)
    assert isinstance(poison, Poison) and poison.reason.startswith(reason), poison


def test_every_missing_feature_is_named_and_oversized_events_are_refused_unread() -> None:
    partial = {k: v for k, v in GOOD.items() if k not in ("v2", "channel")}
    poison = parse(json.dumps(partial).encode())
    assert poison.reason == "missing feature 'v2'; missing feature 'channel'"
    assert parse(b"x" * 100, max_bytes=64).reason.startswith("oversized: 100 bytes")


def test_an_event_without_a_key_may_carry_its_id() -> None:
    event = parse(json.dumps({**GOOD, "event_id": "in-body"}).encode(), key=None)
    assert isinstance(event, Event) and event.event_id == "in-body"
