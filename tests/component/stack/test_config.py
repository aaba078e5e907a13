"""The stack's state: ports and secrets kept across restarts, readable by their owner only;
the settings read from the environment."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from loopline.stack.airflow_env import (
    airflow_environment,
    migrate_metadata_db,
    write_admin_login,
)
from loopline.stack.config import StackConfig, load_config
from support.paths import PROJECT_ROOT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_at_rest_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    config = load_config(PROJECT_ROOT, tmp_path / "state")
    state = tmp_path / "state" / "stack.json"
    assert mode(state) == 0o600
    assert json.loads(state.read_text())["admin_password"] == config.state.admin_password

    config.airflow_home.mkdir(parents=True)
    write_admin_login(config)
    [passwords] = config.airflow_home.glob("simple_auth_manager_passwords*")
    assert mode(passwords) == 0o600
    assert json.loads(passwords.read_text()) == {
        "admin": config.state.admin_password,
        "viewer": config.state.viewer_password,
    }
    assert len({config.state.admin_password, config.state.viewer_password}) == 2


def test_a_state_file_from_before_the_viewer_login_gets_a_viewer_password(tmp_path: Path) -> None:
    first = load_config(PROJECT_ROOT, tmp_path)
    state = json.loads((tmp_path / "stack.json").read_text())
    del state["viewer_password"]
    (tmp_path / "stack.json").write_text(json.dumps(state))
    again = load_config(PROJECT_ROOT, tmp_path)
    assert again.state.viewer_password and again.state.admin_password == first.state.admin_password
    assert load_config(PROJECT_ROOT, tmp_path).state.viewer_password == again.state.viewer_password


def test_a_state_file_left_world_readable_by_an_older_version_is_closed(tmp_path: Path) -> None:
    first = load_config(PROJECT_ROOT, tmp_path)
    (tmp_path / "stack.json").chmod(0o644)
    again = load_config(PROJECT_ROOT, tmp_path)
    assert mode(tmp_path / "stack.json") == 0o600
    assert again.state == first.state  # same ports and secrets across restarts


def test_the_s3_snapshot_interval_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(PROJECT_ROOT, tmp_path)
    monkeypatch.delenv("LOOPLINE_S3_SNAPSHOT_SECONDS", raising=False)
    assert config.s3_snapshot_seconds == 10
    monkeypatch.setenv("LOOPLINE_S3_SNAPSHOT_SECONDS", "2.5")
    assert config.s3_snapshot_seconds == 2.5
    monkeypatch.setenv("LOOPLINE_S3_SNAPSHOT_SECONDS", "0")
    with pytest.raises(ValueError, match="must be positive"):
        _ = config.s3_snapshot_seconds


def test_the_state_folder_is_owner_only_even_when_an_older_version_made_it(
    tmp_path: Path,
) -> None:
    load_config(PROJECT_ROOT, tmp_path / "new")
    assert mode(tmp_path / "new") == 0o700
    (tmp_path / "old").mkdir(mode=0o755)
    load_config(PROJECT_ROOT, tmp_path / "old")
    assert mode(tmp_path / "old") == 0o700


def test_the_migration_marker_keeps_no_database_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`airflow db migrate` is replaced by a script that records its calls and creates the
    database file as Airflow would: what is checked is the marker and the files' modes."""
    monkeypatch.setenv("LOOPLINE_DATABASE_URL", "postgresql+psycopg2://app:hunter2@db:5432/af")
    config = load_config(PROJECT_ROOT, tmp_path / "state")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "airflow").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\ntouch "$AIRFLOW_HOME/airflow.db"\n'
    )
    (bin_dir / "airflow").chmod(0o755)
    monkeypatch.setattr(StackConfig, "venv_bin", property(lambda _: bin_dir))

    migrate_metadata_db(config, tmp_path / "migrate.log")
    migrate_metadata_db(config, tmp_path / "migrate.log")  # up to date: not run again

    assert (tmp_path / "calls").read_text() == "db migrate\n"
    marker = config.airflow_home / ".loopline-migrated"
    assert mode(marker) == 0o600 and "hunter2" not in marker.read_text()
    assert mode(config.airflow_home / "airflow.db") == 0o600  # made under umask 077


def test_airflow_writes_task_logs_owner_only(tmp_path: Path) -> None:
    """Airflow chmods task logs itself (0664 and 0775 by default, its [logging]
    file_task_handler_new_* options), so the umask alone is not enough."""
    env = airflow_environment(load_config(PROJECT_ROOT, tmp_path))
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS"] == "0o600"
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS"] == "0o700"


def test_the_welcome_says_how_to_stop_a_stack_kept_elsewhere(tmp_path, monkeypatch) -> None:
    from loopline.stack.local import stop_command

    monkeypatch.delenv("LOOPLINE_STATE_DIR", raising=False)
    assert stop_command(load_config(tmp_path, tmp_path / ".loopline")) == "`make stop`"
    elsewhere = tmp_path / "state"
    assert stop_command(load_config(tmp_path, elsewhere)) == (
        f"`LOOPLINE_STATE_DIR={elsewhere.resolve()} .venv/bin/loopline stack down`"
    )


def test_the_auth_manager_is_chosen_once_and_a_wrong_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    simple = load_config(PROJECT_ROOT, tmp_path / "simple")
    assert airflow_environment(simple)["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    monkeypatch.setenv("LOOPLINE_AUTH_MANAGER", "fab")
    fab = load_config(PROJECT_ROOT, tmp_path / "fab")
    assert airflow_environment(fab)["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    monkeypatch.delenv("LOOPLINE_AUTH_MANAGER")
    assert load_config(PROJECT_ROOT, tmp_path / "fab").state.auth_manager == "fab"  # kept
    monkeypatch.setenv("LOOPLINE_AUTH_MANAGER", "ldap")
    with pytest.raises(ValueError, match="LOOPLINE_AUTH_MANAGER must be one of"):
        load_config(PROJECT_ROOT, tmp_path / "other")
