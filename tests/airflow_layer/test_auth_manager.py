"""Loopline's FAB auth manager: a HITL step's assigned users (a spec's promotion.approvers)
may name a FAB user by user name, which FAB's own manager never matches (it compares its
numeric user ids)."""

from __future__ import annotations

from airflow.providers.fab.auth_manager.fab_auth_manager import (
    FabAuthManager as AirflowFabAuthManager,
)
from airflow.providers.fab.auth_manager.models import User
from loopline.airflow.auth import FabAuthManager


def fab_user(user_id: int, username: str) -> User:
    return User(id=user_id, username=username, first_name=username, last_name="", email="")


def test_an_approver_is_matched_by_user_name_or_id_and_no_one_else() -> None:
    manager, alice = FabAuthManager(), fab_user(3, "alice")

    assert manager.is_authorized_hitl_task(assigned_users={"alice"}, user=alice)
    assert manager.is_authorized_hitl_task(assigned_users={"3"}, user=alice)
    assert not manager.is_authorized_hitl_task(assigned_users={"bob"}, user=alice)
    assert not manager.is_authorized_hitl_task(assigned_users={"alice"}, user=fab_user(4, "bob"))


def test_fabs_own_manager_never_matches_a_user_name() -> None:
    """Why the subclass exists: with FAB's own, `approvers: [alice]` lets no one answer."""
    alice = fab_user(3, "alice")

    assert not AirflowFabAuthManager().is_authorized_hitl_task(assigned_users={"alice"}, user=alice)
