"""Small state files (heartbeats, status, crash histories) replaced whole: a reader sees the
old file or the new one, never part of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` beside `path`, then rename it over `path` (one writer per file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    staging.write_bytes(data)
    os.replace(staging, path)


def open_private_log(path: Path) -> BinaryIO:
    """`path` opened for appending, created readable by its owner only (0600) whatever the
    umask: service logs can hold URLs, keys in tracebacks and data values."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
