"""The supervisor a local replica runs under: a command killed with SIGKILL is started again
(after the first back-off), and SIGTERM stops the command and the supervisor with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loopline.runtime.supervise import read_status

# Drains on SIGTERM (exits 0), says it is ready by writing its pid into the file it is given.
SLEEPER = (
    "import os, pathlib, signal, sys, time; "
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(600)"
)


def wait_for(check, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError("gave up waiting")


def test_a_killed_command_is_restarted_and_sigterm_stops_both(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "loopline.runtime.supervise", "--status-file", str(status_file),
         "--", sys.executable, "-c", SLEEPER, str(tmp_path / "ready")],
    )  # fmt: skip
    try:
        first = wait_for(lambda: read_status(status_file).get("child_pid"))
        os.kill(first, signal.SIGKILL)
        status = wait_for(
            lambda: (s := read_status(status_file)).get("child_pid") not in (None, first) and s
        )
        assert status["restarts"] == 1 and status["last_exit"] == -signal.SIGKILL
        assert status["pid"] == supervisor.pid

        wait_for(lambda: ready(tmp_path) == status["child_pid"])
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=20) == 0  # the command drained and exited cleanly
        assert read_status(status_file)["last_exit"] == 0
        with_pid = status["child_pid"]
        assert not Path(f"/proc/{with_pid}").exists() or "Z" in _state(with_pid)
    finally:
        supervisor.kill()


def test_it_refuses_to_start_without_a_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopline.runtime.supervise", "--status-file",
         str(tmp_path / "s.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "no command to supervise" in result.stderr


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return "Z"


def ready(folder: Path) -> int | None:
    try:
        return int((folder / "ready").read_text())
    except (FileNotFoundError, ValueError):
        return None


def test_a_command_that_keeps_dying_at_once_is_given_up_on(tmp_path: Path) -> None:
    """Restarts are bounded: two quick deaths in a row read as crash-looping, and after
    --max-quick-restarts of them the supervisor exits with the command's code."""
    status_file = tmp_path / "status.json"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "loopline.runtime.supervise", "--status-file", str(status_file),
         "--max-quick-restarts", "2", "--", sys.executable, "-c", "raise SystemExit(3)"],
        timeout=60,
    )  # fmt: skip
    status = read_status(status_file)
    assert result.returncode == 3
    assert status["gave_up"] and status["crash_looping"] and status["restarts"] == 2
    assert time.monotonic() - started < 30  # back-offs of 1 s and 2 s, nothing more
