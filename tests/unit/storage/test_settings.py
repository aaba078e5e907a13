"""LOOPLINE_S3: S3 settings as JSON, and errors that say so without echoing the keys."""

from __future__ import annotations

import pytest
from loopline.storage.settings import S3Settings


def test_settings_round_trip_and_an_empty_object_is_the_default_chain() -> None:
    settings = S3Settings("http://127.0.0.1:9000", "key", "secret", session_token="token")
    assert S3Settings.from_json(settings.to_json()) == settings
    assert S3Settings.from_json("{}") == S3Settings()


def test_what_is_not_settings_is_refused_clearly_without_the_secret() -> None:
    with pytest.raises(ValueError, match=r"JSON object \(AWS's default credential chain is \{\}"):
        S3Settings.from_json("aws")
    with pytest.raises(ValueError, match="must be S3 settings as a JSON object") as raised:
        S3Settings.from_json('{"secret_key": "hunter2"')  # cut short
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ValueError, match=r"unknown S3 settings.*'secret'") as raised:
        S3Settings.from_json('{"secret": "hunter2"}')
    assert "hunter2" not in str(raised.value)
