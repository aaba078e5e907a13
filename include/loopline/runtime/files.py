"""Small state files (heartbeats, status, crash histories) replaced whole: a reader sees the
old file or the new one, never part of one."""

from __future__ import annotations

import os
from collections.abc import Iterable
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


def write_atomically(
    path: Path, data: bytes, *, durable: bool = True, private: bool = False
) -> None:
    """Write `data` beside `path`, then rename it over `path`: a reader sees the old file or
    the new one. `durable`: flushed to disk before the rename, so a power cut cannot leave an
    empty file under the final name (heartbeats, rewritten every second, skip it).
    `private`: created readable by its owner only (0600) whatever the umask."""
    write_stream_atomically(path, [data], durable=durable, private=private)


def write_stream_atomically(
    path: Path,
    chunks: Iterable[bytes],
    *,
    durable: bool = True,
    private: bool = False,
    sync_folder: bool = True,
) -> None:
    """`write_atomically` for data that comes in chunks (a download), never all in memory.
    `sync_folder=False`: the caller syncs the folder once after many writes (`sync_folder`),
    which costs one fsync instead of one per file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share one
    staging.unlink(missing_ok=True)  # a crashed writer's: created anew, with our mode
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(staging, flags, 0o600 if private else 0o666), "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    if durable and sync_folder:
        sync_folder_entries(path.parent)


def sync_folder_entries(folder: Path) -> None:
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
