"""loopline.runtime.processes on real process groups: find, stop, stale pid files, zombies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from loopline.runtime.processes import ProcessManager, ProcessSpec, wait_until

# A shell with a background child: stopping only the shell would leave the child running.
WITH_A_CHILD = ["sh", "-c", "sleep 30 & sleep 30"]


@pytest.fixture
def manager(tmp_path: Path) -> ProcessManager:
    return ProcessManager(tmp_path / "run", tmp_path / "logs")


@pytest.fixture
def started(manager: ProcessManager, tmp_path: Path) -> Iterator[int]:
    """The pid (and process group id) of WITH_A_CHILD, killed afterwards whatever happens."""
    pid = manager.start(ProcessSpec("sleeper", WITH_A_CHILD, dict(os.environ), tmp_path))
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def live_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    running = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
    return running


def test_pid_finds_the_started_group_and_stop_ends_every_member(
    manager: ProcessManager, started: int
) -> None:
    assert manager.pid("sleeper") == started
    assert os.getpgid(started) == started  # a group of its own
    wait_until(lambda: len(live_members(started)) >= 2, timeout=10, what="the child to start")
    members = live_members(started)

    assert manager.stop("sleeper") is True

    assert still_running(members) == []
    assert live_members(started) == []
    assert manager.pid("sleeper") is None
    assert not (manager.run_dir / "sleeper.pid").exists()
    assert manager.stop("sleeper") is False


def test_stop_kills_a_group_that_ignores_sigterm(manager: ProcessManager, tmp_path: Path) -> None:
    argv = ["sh", "-c", "trap '' TERM; sleep 30 & sleep 30"]  # children inherit the ignore
    pid = manager.start(ProcessSpec("stubborn", argv, dict(os.environ), tmp_path))
    try:
        wait_until(lambda: len(live_members(pid)) >= 2, timeout=10, what="the child to start")
        members = live_members(pid)
        assert manager.stop("stubborn", timeout=0.5) is True
        assert still_running(members) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def test_stop_together_signals_every_process_before_waiting_for_any(
    manager: ProcessManager, tmp_path: Path
) -> None:
    """Each process, on SIGTERM, notes it and waits up to 5 s for the other's note: stopped
    one after the other, the first would find no note and say "alone"."""
    names = ["first", "second"]
    for name, other in zip(names, reversed(names), strict=True):
        on_term = (
            f"touch {name}.term; i=0; while [ ! -e {other}.term ] && [ $i -lt 50 ]; do "
            f"sleep 0.1; i=$((i+1)); done; [ -e {other}.term ] && echo together > {name}.out "
            f"|| echo alone > {name}.out; exit 0"
        )
        argv = ["sh", "-c", f"trap '{on_term}' TERM; while :; do sleep 0.1; done"]
        manager.start(ProcessSpec(name, argv, dict(os.environ), tmp_path))

    assert manager.stop_together([*names, "never-started"], timeout=15) == names

    assert [(tmp_path / f"{name}.out").read_text().strip() for name in names] == ["together"] * 2
    assert manager.pid("first") is None and manager.pid("second") is None


def test_a_stale_pid_file_is_removed(manager: ProcessManager) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = manager.run_dir / "gone.pid"
    pid_file.write_text(str(gone.pid))

    assert manager.pid("gone") is None
    assert not pid_file.exists()


def test_a_zombie_counts_as_dead(manager: ProcessManager) -> None:
    zombie = subprocess.Popen(["true"])  # exits at once; not reaped until wait()
    try:
        wait_until(
            lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE,
            timeout=10,
            what="the process to become a zombie",
        )
        pid_file = manager.run_dir / "zombie.pid"
        pid_file.write_text(str(zombie.pid))

        assert manager.pid("zombie") is None
        assert not pid_file.exists()
        assert manager.stop("zombie") is False
    finally:
        zombie.wait()


def test_wait_until_names_the_last_error_when_it_gives_up() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("nobody listens on 9000")

    with pytest.raises(TimeoutError, match=r"last error: ConnectionRefusedError: nobody listens"):
        wait_until(refused, timeout=0.2, interval=0.05, what="S3", retry_on=(OSError,))
    with pytest.raises(RuntimeError, match=r"process exited; last error: ConnectionRefused"):
        wait_until(refused, timeout=5, what="S3", retry_on=(OSError,), alive=lambda: False)


def test_wait_until_lets_an_unexpected_error_through_at_once() -> None:
    def broken() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_until(broken, timeout=60, what="S3", retry_on=(OSError,))


def test_a_pid_reused_by_another_process_is_not_signalled(
    manager: ProcessManager, started: int, tmp_path: Path
) -> None:
    """The kernel gives a dead process's pid to a new one: the pid file then names a stranger,
    which `stop` must leave alone (it would killpg a whole unrelated group)."""
    # Start times count in clock ticks (10 ms): a reused pid cannot share its tick with the
    # process it replaces, which had to die first.
    time.sleep(0.05)
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        pid_file = manager.run_dir / "sleeper.pid"
        # What the manager wrote for `started`, with the pid now belonging to the stranger.
        pid_file.write_text(pid_file.read_text().replace(str(started), str(stranger.pid), 1))

        assert manager.pid("sleeper") is None
        assert manager.stop("sleeper") is False
        assert stranger.poll() is None  # not signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_services_write_owner_only_files(manager: ProcessManager, tmp_path: Path) -> None:
    spec = ProcessSpec("writer", ["sh", "-c", "echo hi; touch made"], dict(os.environ), tmp_path)
    pid = manager.start(spec)
    wait_until(lambda: (tmp_path / "made").exists(), timeout=10, what="the file")
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o600  # the child's umask is 077
    assert manager.log_file("writer").stat().st_mode & 0o777 == 0o600
