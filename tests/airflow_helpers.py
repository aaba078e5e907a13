"""Reading what a test run left in Airflow's metadata database."""

from __future__ import annotations

from typing import Any


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
