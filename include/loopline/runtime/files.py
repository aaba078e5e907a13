"""Small state files (heartbeats, status, crash histories) replaced whole: a reader sees the
old file or the new one, never part of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

STATE_DIR_VARIABLE = "LOOPLINE_STATE_DIR"


def state_dir(project_root: Path | None = None) -> Path:
    """Where Loopline keeps local state (replicas' heartbeats, the stack's processes and S3
    snapshot): ``$LOOPLINE_STATE_DIR``, else ``.loopline`` in the project root (the current
    folder when none is given). The one definition the CLI, the stack and the operators use."""
    configured = os.environ.get(STATE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    return (project_root or Path.cwd()) / ".loopline"


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` beside `path`, then rename it over `path`: a reader sees the old file or
    the new one. `durable`: flushed to disk before the rename, so a power cut cannot leave an
    empty file under the final name (heartbeats, rewritten every second, skip it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share one
    try:
        with open(staging, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    if durable:
        _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """The rename itself made durable (POSIX: fsync the directory)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_private_log(path: Path) -> BinaryIO:
    """`path` opened for appending, created readable by its owner only (0600) whatever the
    umask: service logs can hold URLs, keys in tracebacks and data values."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
