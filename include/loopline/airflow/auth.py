"""FAB's auth manager, with the approvers of a HITL step named by user name.

Airflow's HITL endpoint lets a user answer a task with ``assigned_users`` only when the auth
manager's ``is_authorized_hitl_task`` finds the user's *id* among them. Under the simple auth
manager the id is the user name; under FAB's it is the row number of the user table ("1",
"2", ...), so a spec's ``promotion.approvers: [alice]`` would match no one and every approval
would wait until it timed out (apache/airflow#61817: upstream's answer is to show the id in
the UI). Spec files are written by people and kept across databases, where those numbers
differ: this manager also accepts the user name, which FAB keeps unique.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.fab.auth_manager.fab_auth_manager import (
    FabAuthManager as AirflowFabAuthManager,
)


class FabAuthManager(AirflowFabAuthManager):
    """FAB's auth manager; a HITL task's assigned users may name a user by id or user name."""

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: Any) -> bool:
        return user.get_id() in assigned_users or user.username in assigned_users
