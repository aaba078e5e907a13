"""The embedded backend: replicas as supervised local processes that outlive the Airflow task
that started them (each in its own session), with pid, version and heartbeat files under the
project's state folder: ``<state>/streaming/<pipeline>/``.

Each slot is a supervisor (``loopline.runtime.supervise``) and its replica: a replica that
dies is restarted by its supervisor at once, as a kubelet restarts a container; a slot whose
supervisor is gone too (the whole group killed) is what the monitor's ``replace_dead`` finds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from loopline.runtime.environment import child_environment
from loopline.runtime.files import write_atomically
from loopline.runtime.processes import ProcessManager, ProcessSpec
from loopline.runtime.supervise import read_status
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
        session_timeout_ms: int | None = None,
    ) -> None:
        self.pipeline, self.spec_path, self.bootstrap = pipeline, spec_path, bootstrap
        self.state_dir, self.s3_json, self.group = state_dir / "streaming", s3_json, consumer_group
        self.folder = self.state_dir / pipeline
        self.processes = ProcessManager(self.folder / "run", self.folder / "logs")
        self.static_membership, self.metrics = static_membership, metrics
        self.session_timeout_ms = session_timeout_ms  # the connection's, over the spec's

    def start(self, slot: int, version: int) -> None:
        argv = [
            sys.executable, "-m", "loopline.runtime.supervise",
            "--status-file", str(self._supervisor_file(slot)), "--",
            sys.executable, "-m", "loopline.streaming.replica",
            "--spec", str(self.spec_path), "--slot", str(slot), "--version", str(version),
            "--bootstrap", self.bootstrap, "--state-dir", str(self.state_dir),
            "--version-file", str(self._slot_file(slot)),
        ]  # fmt: skip
        if self.metrics:  # several replicas share this host: each takes a free port
            argv += ["--metrics-port", "0"]
        if self.session_timeout_ms:
            argv += ["--session-timeout-ms", str(self.session_timeout_ms)]
        # An allowlist, not os.environ: replicas parse untrusted events and load models, and
        # must not hold Airflow's Fernet key, JWT secret or database URL.
        env = child_environment({"LOOPLINE_S3": self.s3_json})
        self._write_version(slot, version)
        self.processes.start(ProcessSpec(self._name(slot), argv, env, Path.cwd()))

    def switch(self, slot: int, version: int) -> bool:
        """Have a running replica load `version` and serve it, in place (it follows its slot
        file); False if the slot has no healthy replica to switch."""
        if not self.status(slot).healthy():
            return False
        self._write_version(slot, version)
        return True

    def _write_version(self, slot: int, version: int) -> None:
        write_atomically(self._slot_file(slot), json.dumps({"version": version}).encode())

    def stop(self, slot: int, retire: bool) -> None:
        self.processes.stop(self._name(slot), timeout=60)  # SIGTERM: it drains first
        if retire:
            self._slot_file(slot).unlink(missing_ok=True)
            if self.static_membership:  # a dynamic member left the group when it closed
                leave_group(self.bootstrap, self.group, f"{self.group}-{slot}")

    def slots(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("slot-*.json"))

    def status(self, slot: int) -> ReplicaStatus:
        pid = self.processes.pid(self._name(slot))  # the supervisor's
        started = self._slot_file(slot)
        version = json.loads(started.read_text())["version"] if started.exists() else None
        supervisor = read_status(self._supervisor_file(slot)) if pid is not None else {}
        beat_file = heartbeat_path(self.state_dir, self.pipeline, slot)
        beat = json.loads(beat_file.read_text()) if beat_file.exists() else {}
        if supervisor.get("pid") != pid or beat.get("pid") != supervisor.get("child_pid"):
            beat = {}  # an earlier replica's heartbeat: not the one running now
        return ReplicaStatus(
            slot,
            pid is not None,
            beat.get("state"),
            beat.get("model_version", version),
            beat.get("updated_at"),
            beat,
            restarts=supervisor.get("restarts", 0) if supervisor.get("pid") == pid else 0,
            crash_looping=bool(supervisor.get("crash_looping")) and supervisor.get("pid") == pid,
        )

    def log_tail(self, slot: int) -> str:
        return self.processes.tail(self._name(slot))

    def _name(self, slot: int) -> str:
        return f"replica-{slot}"

    def _supervisor_file(self, slot: int) -> Path:
        return self.processes.run_dir / f"{self._name(slot)}.supervisor.json"

    def _slot_file(self, slot: int) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"slot-{slot}.json"
