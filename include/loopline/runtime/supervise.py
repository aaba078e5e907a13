"""Keep one command running: ``python -m loopline.runtime.supervise --status-file F -- CMD...``.

When the command dies (a crash, a ``kill -9``, the OOM killer) it is started again, as a
kubelet restarts a pod's container, without waiting for anyone's next check: a scoring
replica is back in seconds, not at the next monitor run. Restarts back off (1 s, doubling to
30 s, back to 1 s once a run lasted a minute) so a command that cannot start does not spin.
A clean exit (0) ends the supervisor too. Restarts are not endless: after
``--max-quick-restarts`` runs in a row that each died within a minute (10 by default) the
supervisor gives up and exits with the command's code, saying so in its status, and whoever
watches the slot (the monitor's ``replace_dead``, once a minute) decides what next, as a
kubelet's CrashLoopBackOff leaves it to the controller. The status says ``crash_looping``
from the second quick death on.

SIGTERM or SIGINT stops: the signal goes on to the command (it drains), the supervisor waits
for it and exits with its code. The status file (JSON, replaced atomically) says which pid
runs the command now, how often it was restarted and how the last run ended.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from loopline.runtime.files import write_atomically

log = logging.getLogger("loopline.supervise")

FIRST_BACKOFF, MAX_BACKOFF, STABLE_SECONDS = 1.0, 30.0, 60.0
MAX_QUICK_RESTARTS = 10


class Supervisor:
    def __init__(
        self, command: list[str], status_file: Path, max_quick_restarts: int = MAX_QUICK_RESTARTS
    ) -> None:
        self.command, self.status_file = command, status_file
        self.max_quick_restarts = max_quick_restarts
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self.quick_deaths, self.gave_up = 0, False  # runs in a row that died within a minute

    def stop(self, signum: int, _frame: object = None) -> None:
        self.stopping.set()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        backoff = FIRST_BACKOFF
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command)
            self._write_status()
            code = self.child.wait()
            self.last_exit = code
            if self.stopping.is_set() or code == 0:
                self._write_status()
                return code if code >= 0 else 128 - code  # killed by signal N: 128 + N
            if time.monotonic() - started >= STABLE_SECONDS:
                backoff, self.quick_deaths = FIRST_BACKOFF, 0
            else:
                self.quick_deaths += 1
            if self.quick_deaths > self.max_quick_restarts:
                log.error(
                    "%s died %d times in a row, each within %.0f s: giving up",
                    shlex.join(self.command)[:200], self.quick_deaths, STABLE_SECONDS,
                )  # fmt: skip
                self.gave_up = True
                self._write_status()
                return code if code >= 0 else 128 - code
            log.warning(
                "%s exited with %s; restarting in %.0f s", shlex.join(self.command)[:200], code,
                backoff,
            )  # fmt: skip
            self.restarts += 1
            self._write_status()
            if self.stopping.wait(backoff):
                return code if code >= 0 else 128 - code
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _write_status(self) -> None:
        status = {
            "pid": os.getpid(),
            "child_pid": self.child.pid if self.child else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "crash_looping": self.quick_deaths >= 2,
            "gave_up": self.gave_up,
            "updated_at": time.time(),
        }
        write_atomically(self.status_file, json.dumps(status).encode())


def read_status(status_file: Path) -> dict:
    try:
        return json.loads(status_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Keep a command running; restart it if it dies.")
    parser.add_argument("--status-file", type=Path, required=True)
    parser.add_argument(
        "--max-quick-restarts",
        type=int,
        default=MAX_QUICK_RESTARTS,
        help="give up after this many runs in a row that died within a minute",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command and its args")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise (put it after --)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(command, args.status_file, args.max_quick_restarts)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
