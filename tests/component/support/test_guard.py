"""The unit tier's guard (support.guard) refuses what the tier promises not to use. Checked
here, outside the unit tier, where processes may run."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import guard
from support.guard import UnitTierViolation

TESTS = Path(__file__).resolve().parents[2]


def test_every_way_to_start_a_process_or_open_a_socket_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = guard.forbid_processes_and_sockets(monkeypatch)
    attempts = {
        "subprocess": lambda: subprocess.run(["true"]),
        "fork": lambda: multiprocessing.get_context("fork").Process(target=print).start(),
        "spawn": lambda: multiprocessing.get_context("spawn").Process(target=print).start(),
        "system": lambda: os.system("true"),
        "bind": lambda: socket.socket().bind(("127.0.0.1", 0)),
        "connect": lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
    }
    for attempt in attempts.values():
        with pytest.raises(UnitTierViolation, match="move this test to tests/component"):
            attempt()
    assert len(refused) == len(attempts)


def test_a_heavy_import_is_refused_to_unit_tier_code_only() -> None:
    """In a fresh interpreter, where Evidently is not loaded yet: code compiled as a unit test
    module may not import it; other code imports what it likes."""
    unit_module = guard.UNIT_TIER / "test_example.py"
    code = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from support import guard
guard.install_import_blocker()
try:
    exec(compile("import evidently", {str(unit_module)!r}, "exec"))
except guard.UnitTierViolation as refusal:
    print("refused:", refusal)
exec(compile("import colorsys", {str(unit_module)!r}, "exec"))
print("light import allowed:", "colorsys" in sys.modules)
print("loaded:", guard.heavy_libraries_loaded())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert "refused: the unit tier imported evidently" in result.stdout
    assert "light import allowed: True" in result.stdout
    assert "loaded: []" in result.stdout
