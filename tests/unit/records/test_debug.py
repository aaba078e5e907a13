"""What a debug bundle keeps of a failure: secrets redacted by key and by shape, long values
and deep nesting cut, the error's chain and the evidence its causes carry."""

from __future__ import annotations

import pytest
from loopline.records.debug import (
    MAX_ITEMS,
    MAX_TEXT,
    REDACTED,
    bounded,
    error_info,
    evidence,
    redact_text,
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"access_key": "loopline", "secret_key": "s3cr3t-value"}', "s3cr3t-value"),
        ("AWS_SECRET_ACCESS_KEY=abcd1234 next", "abcd1234"),
        ("password: hunter2, user: bob", "hunter2"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("postgresql://airflow:pa55word@db:5432/airflow", "pa55word"),
        ("key id AKIAIOSFODNN7EXAMPLE in the message", "AKIAIOSFODNN7EXAMPLE"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "MIIE"),
    ],
)
def test_secrets_are_redacted_wherever_they_appear_in_text(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted and REDACTED in redacted


def test_keys_that_name_secrets_are_redacted_and_the_rest_is_kept() -> None:
    kept = bounded({"sasl.password": "x", "api_key": 7, "Token": None, "rows": 12, "pipeline": "p"})
    assert kept == {
        "sasl.password": REDACTED,
        "api_key": REDACTED,
        "Token": REDACTED,
        "rows": 12,
        "pipeline": "p",
    }


def test_long_values_many_items_and_deep_nesting_are_cut_saying_how_much() -> None:
    deep: dict = {}
    level = deep
    for _ in range(10):
        level["next"] = {}
        level = level["next"]
    kept = bounded(
        {"long": "a" * (MAX_TEXT + 500), "many": list(range(MAX_ITEMS + 7)), "deep": deep}
    )
    assert kept["long"].endswith("(500 more characters cut)")
    assert len(kept["long"]) < MAX_TEXT + 50
    assert kept["many"][-1] == "… 7 more item(s) cut" and len(kept["many"]) == MAX_ITEMS + 1
    assert "[too deep]" in repr(kept["deep"])
    assert bounded(b"\xff\xfeabc").endswith("abc")  # bytes as text, undecodable bytes replaced
    assert bounded(object()).startswith("<object object")  # anything else as its repr


class Unreadable(Exception):
    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.debug_evidence = {"key": key, "first_bytes": "a;b"}


def test_an_error_keeps_its_chain_and_the_evidence_its_causes_carry() -> None:
    try:
        try:
            raise Unreadable("wrong delimiter", "landing/x.csv")
        except Unreadable as cause:
            raise RuntimeError("validation failed for token=abc123") from cause
    except RuntimeError as error:
        info = error_info(error)
        found = evidence(error)
    assert info.type == "RuntimeError"
    assert info.message == f"validation failed for token={REDACTED}"
    assert info.chain == ["Unreadable: wrong delimiter"]
    assert "Traceback" in info.traceback and "abc123" not in info.traceback
    assert found == {"key": "landing/x.csv", "first_bytes": "a;b"}
