"""The embedded backend: replicas as supervised local processes that outlive the Airflow task
that started them (each in its own session), with pid, version and heartbeat files under the
project's state folder: ``<state>/streaming/<pipeline>/``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from loopline.runtime.processes import ProcessManager, ProcessSpec
from loopline.streaming.consumer import heartbeat_path, leave_group
from loopline.streaming.deployment import ReplicaStatus


class LocalProcessBackend:
    def __init__(
        self,
        pipeline: str,
        spec_path: Path,
        bootstrap: str,
        state_dir: Path,
        s3_json: str,
        consumer_group: str,
        static_membership: bool = False,
        metrics: bool = True,
    ) -> None:
        self.pipeline, self.spec_path, self.bootstrap = pipeline, spec_path, bootstrap
        self.state_dir, self.s3_json, self.group = state_dir / "streaming", s3_json, consumer_group
        self.folder = self.state_dir / pipeline
        self.processes = ProcessManager(self.folder / "run", self.folder / "logs")
        self.static_membership, self.metrics = static_membership, metrics

    def start(self, slot: int, version: int) -> None:
        argv = [
            sys.executable, "-m", "loopline.streaming.replica",
            "--spec", str(self.spec_path), "--slot", str(slot), "--version", str(version),
            "--bootstrap", self.bootstrap, "--state-dir", str(self.state_dir),
        ]  # fmt: skip
        if self.metrics:  # several replicas share this host: each takes a free port
            argv += ["--metrics-port", "0"]
        env = {**os.environ, "LOOPLINE_S3": self.s3_json}
        self.processes.start(ProcessSpec(self._name(slot), argv, env, Path.cwd()))
        self._slot_file(slot).write_text(json.dumps({"version": version}))

    def stop(self, slot: int, retire: bool) -> None:
        self.processes.stop(self._name(slot), timeout=60)  # SIGTERM: it drains first
        if retire:
            self._slot_file(slot).unlink(missing_ok=True)
            if self.static_membership:  # a dynamic member left the group when it closed
                leave_group(self.bootstrap, self.group, f"{self.group}-{slot}")

    def slots(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("slot-*.json"))

    def status(self, slot: int) -> ReplicaStatus:
        pid = self.processes.pid(self._name(slot))
        started = self._slot_file(slot)
        version = json.loads(started.read_text())["version"] if started.exists() else None
        beat_file = heartbeat_path(self.state_dir, self.pipeline, slot)
        beat = json.loads(beat_file.read_text()) if beat_file.exists() else {}
        if pid is None or beat.get("pid") != pid:  # an earlier process's heartbeat: not this one's
            beat = {}
        return ReplicaStatus(
            slot,
            pid is not None,
            beat.get("state"),
            beat.get("model_version", version),
            beat.get("updated_at"),
            beat,
        )

    def log_tail(self, slot: int) -> str:
        return self.processes.tail(self._name(slot))

    def _name(self, slot: int) -> str:
        return f"replica-{slot}"

    def _slot_file(self, slot: int) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"slot-{slot}.json"
