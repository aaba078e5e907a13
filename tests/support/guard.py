"""The unit tier's promise, enforced: pure logic, in seconds.

A unit test imports no heavy library (Airflow, TensorFlow/Keras, Great Expectations, pyspark,
Evidently: each costs seconds to import and pulls in servers or JVMs), starts no process and
opens no socket (no server of its own, none of anyone else's: a stack left running by `make
run` must not make a unit test pass). tests/unit/conftest.py installs the import blocker for
the unit tier and applies `forbid_processes_and_sockets` to every unit test; a test that needs
any of these belongs in tests/component (or a slower tier).
"""

from __future__ import annotations

import importlib.abc
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HEAVY_LIBRARIES = ("airflow", "tensorflow", "keras", "great_expectations", "pyspark", "evidently")
UNIT_TIER = Path(__file__).resolve().parents[1] / "unit"

MOVE_IT = "the unit tier is pure logic: move this test to tests/component (or a slower tier)"


class UnitTierViolation(ImportError):
    """A unit test reached for what the unit tier promises not to use.

    An ImportError, so that an import of a heavy library fails where it is made (a library's
    optional `try: import pyspark` still goes on without it); the socket and process guards
    raise it too, and record it, so a caller that swallows it does not hide it."""


def heavy_libraries_loaded(modules: Sequence[str] | None = None) -> list[str]:
    """The heavy libraries among the loaded modules (top-level names, sorted)."""
    names = sys.modules if modules is None else modules
    return sorted({name.partition(".")[0] for name in names} & set(HEAVY_LIBRARIES))


def _called_from_the_unit_tier() -> bool:
    """Whether code of tests/unit (a test module, its conftest) is on the calling stack."""
    unit = str(UNIT_TIER) + os.sep
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(unit):
            return True
        frame = frame.f_back
    return False


class HeavyImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses to load a heavy library for code of the unit tier.

    A meta path finder is asked only for modules not loaded yet, so this catches every heavy
    import of a unit-only run (`make test-fast`); in a run of every tier, whatever another tier
    loaded first is already there and only the session check of a unit-only run sees it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        top = fullname.partition(".")[0]
        if top in HEAVY_LIBRARIES and _called_from_the_unit_tier():
            raise UnitTierViolation(f"the unit tier imported {top}: {MOVE_IT}", name=fullname)
        return None


def install_import_blocker() -> None:
    if not any(isinstance(finder, HeavyImportBlocker) for finder in sys.meta_path):
        sys.meta_path.insert(0, HeavyImportBlocker())


def forbid_processes_and_sockets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every way to start a process, and every bind, listen and connect, raise
    UnitTierViolation until the test ends. Returns the list each refusal is noted in."""
    refused: list[str] = []

    def refusing(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            refused.append(what)
            raise UnitTierViolation(f"a unit test {what}: {MOVE_IT}")

        return refuse

    # subprocess (and asyncio's subprocesses) go through Popen._execute_child; multiprocessing's
    # spawn and forkserver start through _posixsubprocess.fork_exec, its fork through os.fork.
    import _posixsubprocess  # type: ignore[import-not-found]

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refusing("started a subprocess"))
    monkeypatch.setattr(_posixsubprocess, "fork_exec", refusing("started a process"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refusing(f"started a process (os.{name})"))
    for name in ("bind", "listen", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refusing(f"opened a socket (socket.{name})"))
    return refused
