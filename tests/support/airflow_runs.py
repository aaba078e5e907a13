"""Pointing the DAG files at spec variants, and reading what a run left in Airflow's database."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.paths import PIPELINES, PROJECT_ROOT


def use_spec_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[dict], None]
) -> None:
    """Point the DAG files at a copy of the demo spec, changed by `change`, and its suites."""
    spec = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    change(spec)
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "card_fraud.yaml").write_text(yaml.safe_dump(spec))
    shutil.copytree(PROJECT_ROOT / "include" / "expectations", tmp_path / "expectations")
    monkeypatch.setenv("LOOPLINE_PIPELINES_DIR", str(pipelines))


def asset_events(uri: str, run_id: str) -> list[Any]:
    """Events of the asset at `uri` emitted by one DAG run."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)
            .all()
        )
        session.expunge_all()
    return events
