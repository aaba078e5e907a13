"""A hostile spec file that once crashed the interpreter (security review F13), loaded in a
child process so that a crash fails the test instead of ending the run. The other hostile
specs are unit-tested (tests/unit/spec/test_loader_bounds.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loopline.spec.loader import MAX_SPEC_DEPTH


def test_a_megabyte_of_brackets_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Composed in C, 500,000 levels overflowed the stack: the process died (SIGSEGV), so this
    runs in a child process where a crash is a failure, not the end of the test run."""
    path = tmp_path / "brackets.yaml"
    path.write_text("[" * 500_000 + "]" * 500_000)
    code = (
        "import sys\nfrom loopline.spec import SpecError, load_spec\n"
        f"try:\n    load_spec({str(path)!r})\nexcept SpecError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-500:]}"
    assert f"nesting deeper than {MAX_SPEC_DEPTH} levels at line 1" in result.stdout
