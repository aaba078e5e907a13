"""The registry tests' shared fixture: an empty registry in the demo bucket on the test S3
server."""

from __future__ import annotations

import pytest
from loopline.registry import ModelRegistry
from support.judged_versions import empty_registry


@pytest.fixture
def registry(s3) -> ModelRegistry:
    return empty_registry(s3)
