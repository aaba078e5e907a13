"""Start, find and stop background processes, each in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from loopline.runtime.files import open_private_log


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    # The files it creates (logs, databases, snapshots) are its owner's only.
    umask: int = 0o077


class ProcessManager:
    """Keeps one pid file per process under `run_dir` and one log file under `logs_dir`.

    A pid file holds ``<pid> <start time>``: the kernel reuses pids, so a pid alone could name
    an unrelated process started after ours died, which `stop` would then signal. A process
    counts as ours only while its start time (`_start_time`) is the recorded one.
    """

    def __init__(self, run_dir: Path, logs_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs_dir = logs_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        logs_dir.mkdir(parents=True, exist_ok=True)

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of `name` if it is running, else None (a stale pid file is removed)."""
        pid_file = self.run_dir / f"{name}.pid"
        try:
            pid, started = _parse_pid_file(pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid, started):
            return pid
        pid_file.unlink(missing_ok=True)
        return None

    def start(self, spec: ProcessSpec) -> int:
        """Start `spec` unless it already runs; return its pid."""
        running = self.pid(spec.name)
        if running:
            return running
        with open_private_log(self.log_file(spec.name)) as log:
            process = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() ends it and all its children
                umask=spec.umask,
            )
        started = _start_time(process.pid)
        pid_file = self.run_dir / f"{spec.name}.pid"
        pid_file.write_text(f"{process.pid} {started}" if started else str(process.pid))
        return process.pid

    def stop(self, name: str, timeout: float = 20.0) -> bool:
        """Stop `name` and its whole process group; return True if it was running."""
        return bool(self.stop_together([name], timeout))

    def stop_together(self, names: Sequence[str], timeout: float = 20.0) -> list[str]:
        """Stop each of `names` with its process group, all at once: SIGTERM to every one,
        then one shared wait (SIGKILL for any still there after `timeout`), so that stopping
        four Airflow components takes as long as the slowest, not as long as all four.
        Returns the names that were running, in the order given."""
        running = {name: pid for name in names if (pid := self.pid(name)) is not None}
        for pid in running.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(map(_group_alive, running.values())) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name, pid in running.items():
            if _group_alive(pid):
                _signal_group(pid, signal.SIGKILL)
                _wait_gone(name, pid)
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        return list(running)

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _wait_gone(name: str, pid: int) -> None:
    wait_until(lambda: not _group_alive(pid), timeout=10, what=f"{name} to exit")


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    alive: Callable[[], bool] | None = None,
    retry_on: tuple[type[Exception], ...] = (),
) -> None:
    """Poll `check` until it is true; fail early if `alive` says the process died.

    An exception listed in `retry_on` counts as "not yet"; the last one is named when waiting
    ends, so that a wrong password does not hide behind "gave up waiting".
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except retry_on as error:
            last_error = error
        if alive is not None and not alive():
            raise RuntimeError(
                f"gave up waiting for {what}: the process exited{_last(last_error)}"
            ) from last_error
        time.sleep(interval)
    raise TimeoutError(
        f"gave up waiting for {what} after {timeout:.0f}s{_last(last_error)}"
    ) from last_error


def _last(error: Exception | None) -> str:
    return "" if error is None else f"; last error: {type(error).__name__}: {error}"


def _parse_pid_file(text: str) -> tuple[int, str | None]:
    """``<pid> <start time>``; a file from an older version has the pid only (None)."""
    pid, _, started = text.strip().partition(" ")
    return int(pid), started or None


def _start_time(pid: int) -> str | None:
    """When `pid` started, as a token to compare: on Linux the clock ticks from boot to its
    start (``/proc/<pid>/stat`` field 22: exact, whatever the wall clock does), elsewhere
    psutil's create time. None if it cannot be read (gone, or not ours to read)."""
    try:
        if sys.platform.startswith("linux"):
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat.rpartition(")")[2].split()[19]  # the fields after (comm) start at 3
        return repr(psutil.Process(pid).create_time())
    except (OSError, IndexError, psutil.Error):
        return None


def _alive(pid: int, started: str | None = None) -> bool:
    """True while `pid` runs and, if `started` is given, is the process that started then
    (not a later one that got the same pid); a zombie (exited, not reaped) counts as dead."""
    if started is not None and _start_time(pid) != started:
        return False  # gone, or the pid was reused
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process: it exists
        return True


def _group_alive(pgid: int) -> bool:
    return next(_group_members(pgid), None) is not None


def _group_members(pgid: int) -> Iterator[psutil.Process]:
    """The live (non-zombie) processes of group `pgid`."""
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getpgid(process.pid) == pgid:
                yield process
        except ProcessLookupError:  # it exited while we looked
            continue


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
