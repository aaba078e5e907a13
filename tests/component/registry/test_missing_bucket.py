"""A vanished bucket is an error that names it and the endpoint, not a NoSuchBucket traceback."""

from __future__ import annotations

import pytest
from loopline.cli import main
from loopline.registry import ModelRegistry, RegistryError
from loopline.storage.objects import ObjectStore
from support.paths import PROJECT_ROOT


def test_the_registry_names_a_missing_bucket_and_its_endpoint(s3) -> None:
    registry = ModelRegistry(ObjectStore(s3.client()), "gone")
    message = f"the bucket gone does not exist at {s3.endpoint}"
    with pytest.raises(RegistryError, match=message):
        registry.versions("fraud")
    with pytest.raises(RegistryError, match=message):
        registry.alias("fraud", "champion")


def test_models_list_on_a_missing_bucket_says_so(s3, monkeypatch, capsys) -> None:
    for env, value in s3.cli_environment().items():
        monkeypatch.setenv(env, value)

    code = main(["--project", str(PROJECT_ROOT), "models", "list", "card_fraud"])

    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"error: the bucket loopline does not exist at {s3.endpoint}")
