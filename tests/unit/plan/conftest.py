"""The plan tests' shared fixture: a project folder holding the demo spec and its suites."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.paths import PIPELINES


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    shutil.copy(PIPELINES / "card_fraud.yaml", pipelines)
    shutil.copytree(PIPELINES.parent / "expectations", tmp_path / "expectations")
    return pipelines
