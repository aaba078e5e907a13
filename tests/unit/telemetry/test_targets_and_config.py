"""The replicas' targets file, Prometheus' generated config and where its binary is found."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml
from loopline.streaming.health import heartbeat_path
from loopline.telemetry.prometheus import (
    BINARY_ENV,
    TOOLS_BINARY,
    prometheus_argv,
    prometheus_binary,
    write_config,
)
from loopline.telemetry.targets import replica_targets, write_targets


def beat(state_dir: Path, pipeline: str, slot: int, **fields) -> None:
    path = heartbeat_path(state_dir / "streaming", pipeline, slot)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state": "running", "updated_at": time.time(), **fields}))


def test_live_replicas_that_serve_metrics_become_targets(tmp_path: Path) -> None:
    beat(tmp_path, "card_fraud", 0, metrics_url="http://127.0.0.1:41001/metrics")
    beat(tmp_path, "card_fraud", 1, metrics_url="http://127.0.0.1:41002/metrics", state="stopped")
    beat(tmp_path, "card_fraud", 2, metrics_url="http://127.0.0.1:41003/metrics",
         updated_at=time.time() - 600)  # fmt: skip
    beat(tmp_path, "card_fraud", 3, metrics_url=None)  # started without metrics
    beat(tmp_path, "churn", 0, metrics_url="http://127.0.0.1:41005/metrics", state="joining")
    (tmp_path / "streaming" / "card_fraud" / "slot-0.json").write_text('{"version": 1}')
    assert replica_targets(tmp_path) == [
        {"targets": ["127.0.0.1:41001"], "labels": {"pipeline": "card_fraud", "slot": "0"}},
        {"targets": ["127.0.0.1:41005"], "labels": {"pipeline": "churn", "slot": "0"}},
    ]


def test_targets_are_written_only_when_they_change(tmp_path: Path) -> None:
    path = tmp_path / "targets" / "replicas.json"
    entries = [{"targets": ["127.0.0.1:1"], "labels": {"pipeline": "p", "slot": "0"}}]
    assert write_targets(path, entries) and not write_targets(path, entries)
    assert json.loads(path.read_text()) == entries
    assert write_targets(path, [])


def test_the_config_scrapes_the_exporter_and_the_targets_file(tmp_path: Path) -> None:
    config = yaml.safe_load(write_config(tmp_path, "127.0.0.1:9469", 15).read_text())
    assert config["global"]["scrape_interval"] == "15s"
    [exporter, replicas] = config["scrape_configs"]
    assert exporter["static_configs"] == [{"targets": ["127.0.0.1:9469"]}]
    assert replicas["file_sd_configs"][0]["files"] == [str(tmp_path / "targets/replicas.json")]
    assert json.loads((tmp_path / "targets/replicas.json").read_text()) == []
    argv = prometheus_argv(Path("/bin/prometheus"), tmp_path / "p.yml", tmp_path / "d", "h:1")
    assert "--web.listen-address=h:1" in argv and f"--storage.tsdb.path={tmp_path / 'd'}" in argv


def test_the_binary_is_the_named_one_then_the_project_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert prometheus_binary(tmp_path) is None
    local = tmp_path / TOOLS_BINARY
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\n")
    local.chmod(local.stat().st_mode | stat.S_IXUSR)
    assert prometheus_binary(tmp_path) == local
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"LOOPLINE_PROMETHEUS=.*nowhere"):
        prometheus_binary(tmp_path)
    assert os.access(local, os.X_OK)
