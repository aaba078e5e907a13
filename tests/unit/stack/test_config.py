"""The stack's state: ports and secrets kept across restarts, readable by their owner only;
the settings read from the environment."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from loopline.stack.airflow_env import write_admin_login
from loopline.stack.config import load_config


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
    assert json.loads(passwords.read_text()) == {"admin": config.state.admin_password}


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
