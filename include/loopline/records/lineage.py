"""Which code made a record: the image's version, else the git commit."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

CODE_VERSION_ENV = "LOOPLINE_CODE_VERSION"


@functools.cache
def code_version() -> str:
    """$LOOPLINE_CODE_VERSION (set it in the image), else the git commit, else 'unknown'
    (logged: lineage without a code version is worth a warning)."""
    if version := os.environ.get(CODE_VERSION_ENV):
        return version
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("code version unknown: set %s (git said: %s)", CODE_VERSION_ENV, exc)
        return "unknown"
