"""The gate tests' shared fixtures: the demo suite, and the demo bucket on the test S3 server."""

from __future__ import annotations

import pytest
from loopline.storage.objects import ObjectStore
from loopline.validation.suites import load_suite
from support.paths import PROJECT_ROOT
from support.validated_data import demo_bucket


@pytest.fixture(scope="module")
def suite():
    return load_suite(PROJECT_ROOT / "include" / "expectations" / "card_fraud.json")


@pytest.fixture
def store(s3) -> ObjectStore:
    return demo_bucket(s3)
