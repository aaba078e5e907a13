"""Create FAB users from JSON on stdin: ``python -m loopline.airflow.fab_users < logins.json``.

``airflow users create`` takes the password as a command-line argument, where any local user
can read it (``ps``) and where one that starts with "-" is taken for an option; the local
stack sends its logins here instead, as ``[{"username", "password", "role"}, ...]``. A user
that exists is left as it is, as ``airflow users create`` leaves it.
"""

from __future__ import annotations

import json
import sys


def create_users(logins: list[dict[str, str]]) -> list[str]:
    """Create each login that does not exist yet; returns what was done, a line each."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    done = []
    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        for login in logins:
            username, role_name = login["username"], login["role"]
            role = security.find_role(role_name)
            if role is None:
                raise SystemExit(f"{role_name} is not a FAB role: {security.get_all_roles()}")
            if security.find_user(username):
                done.append(f"{username}: exists")
                continue
            email = f"{username}@loopline.invalid"
            if not security.add_user(
                username, username, "loopline", email, role, login["password"]
            ):
                raise SystemExit(f"FAB did not create {username}")
            done.append(f"{username}: created with role {role_name}")
    return done


def main() -> int:
    for line in create_users(json.load(sys.stdin)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
