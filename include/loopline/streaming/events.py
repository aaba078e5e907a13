"""Feature events off the input topic, read strictly: a scoreable row or a reason why not.

An event is a Kafka record keyed by its event id whose value is a UTF-8 JSON object holding
every model feature: numbers as JSON numbers, categories as strings. Anything else is a poison
message: it goes to the dead-letter topic with its reason and never stops the consumer.

The rule is not a list of known faults: any exception while reading one event makes that
event a poison message (Kafka Streams' deserialization-exception handler does the same), so a
producer cannot find a value that stops the group. Numbers are coerced as batch scoring
coerces them (to float32, rounding) and must be representable there: a value beyond float32's
range would become infinity, so it is refused instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.spec.sections import ModelSpec


@dataclass(frozen=True)
class Event:
    event_id: str
    features: dict[str, Any]
    created_ms: int  # the record's timestamp: when the producer made it


@dataclass(frozen=True)
class Poison:
    reason: str  # for people: what is wrong, with the details
    # for metrics, a small fixed set: empty, oversized, encoding, json, key, features,
    # unreadable (any other fault reading it), scoring (the model failed on it alone) and
    # crash (its replica died twice on it)
    kind: str


FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_event(
    key: bytes | None, value: bytes | None, created_ms: int, model: ModelSpec, max_bytes: int
) -> Event | Poison:
    """The event in a record, or why it cannot be scored; never raises."""
    try:
        return _parse(key, value, created_ms, model, max_bytes)
    except Exception as exc:  # the rule: one event's fault is that event's dead letter
        return Poison(f"unreadable: {type(exc).__name__}: {str(exc)[:200]}", "unreadable")


def _parse(
    key: bytes | None, value: bytes | None, created_ms: int, model: ModelSpec, max_bytes: int
) -> Event | Poison:
    if value is None:
        return Poison("empty record (no value)", "empty")
    if len(value) > max_bytes:
        return Poison(
            f"oversized: {len(value):,} bytes > streaming.max_event_bytes {max_bytes:,}",
            "oversized",
        )
    try:
        text = value.decode("utf-8")
        event_id = key.decode("utf-8") if key else ""
    except UnicodeDecodeError as exc:
        return Poison(f"not UTF-8: {exc.reason} at byte {exc.start}", "encoding")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        return Poison(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "json")
    except (RecursionError, ValueError) as exc:  # nesting too deep; an int of > 4,300 digits
        return Poison(f"not JSON we can read: {str(exc)[:200]}", "json")
    if not isinstance(payload, dict):
        return Poison(f"not a JSON object: a {type(payload).__name__}", "json")
    event_id = event_id or str(payload.get("event_id") or "")
    if not event_id:
        return Poison("no event id: the record has no key and the event no event_id", "key")
    problems = [p for name in model.features.numeric if (p := _number(payload, name))]
    problems += [p for name in model.features.categorical if (p := _category(payload, name))]
    if problems:
        return Poison("; ".join(problems), "features")
    features = {name: float(payload[name]) for name in model.features.numeric}
    features |= {name: payload[name] for name in model.features.categorical}
    return Event(event_id, features, created_ms)


def _number(payload: dict[str, Any], name: str) -> str | None:
    if name not in payload:
        return f"missing feature {name!r}"
    value = payload[name]
    if value is None:
        return f"{name!r} is null"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name!r} is not a number: {type(value).__name__} {str(value)[:40]!r}"
    try:
        number = float(value)  # as batch scoring casts an int column: rounded to the nearest
    except OverflowError:
        return f"{name!r} is too large for a number: {len(str(value))} digits"
    if not math.isfinite(number):
        return f"{name!r} is not finite"
    if abs(number) > FLOAT32_MAX:
        return f"{name!r} = {number:.4g} is beyond float32's range (|x| <= {FLOAT32_MAX:.4g})"
    return None


def _category(payload: dict[str, Any], name: str) -> str | None:
    if name not in payload:
        return f"missing feature {name!r}"
    value = payload[name]
    if value is None:
        return f"{name!r} is null"
    if not isinstance(value, str):
        return f"{name!r} is not a string: {type(value).__name__} {str(value)[:40]!r}"
    try:
        value.encode("utf-8")  # a JSON "\ud800" decodes to a lone surrogate Arrow cannot hold
    except UnicodeEncodeError:
        return f"{name!r} holds a lone surrogate, not text"
    return None


def features_table(events: list[Event], model: ModelSpec) -> pa.Table:
    """The events' features as the model's input table (float32 numbers, strings)."""
    columns: dict[str, pa.Array] = {}
    for name in model.features.numeric:
        columns[name] = pa.array([e.features[name] for e in events], pa.float32())
    for name in model.features.categorical:
        columns[name] = pa.array([e.features[name] for e in events], pa.string())
    return pa.table(columns)


def probe_event(model: ModelSpec) -> Event:
    """A row every working model scores (zeros, an unseen category): to tell a broken model
    from events it cannot score."""
    features: dict[str, Any] = dict.fromkeys(model.features.numeric, 0.0)
    features |= dict.fromkeys(model.features.categorical, "probe")
    return Event("probe", features, 0)
