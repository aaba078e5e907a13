"""Which artifact names a version may hold: the files Loopline writes, and nothing that could
land outside the folder a version is downloaded into.

A version's ``metadata.json`` lists its artifacts by relative name, and a download writes
``destination / name`` for each. Anyone who can write to the bucket can write that file, so a
name is checked before it is used: on register (never store one) and on download (never obey
one).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from loopline.registry.layout import MODEL_FILE, SAVED_MODEL_DIR

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ALLOWED = f"{MODEL_FILE} or {SAVED_MODEL_DIR}/..."


def artifact_problem(name: str) -> str | None:
    """Why `name` cannot be an artifact of a version, or None when it can."""
    if not name:
        return "the name is empty"
    if "\\" in name:
        return "it contains a backslash"
    if _CONTROL.search(name):
        return "it contains a control character"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "it is an absolute path"
    parts = name.split("/")
    if "" in parts:
        return "it has an empty segment"
    if ".." in parts or "." in parts:
        return "it has a '.' or '..' segment"
    if name != MODEL_FILE and not (parts[0] == SAVED_MODEL_DIR and len(parts) > 1):
        return f"it is not a file Loopline writes ({ALLOWED})"
    return None


def target_problem(name: str, destination: Path) -> str | None:
    """Why `name` would not stay under `destination` once symlinks there are followed."""
    root = destination.resolve()
    if not (root / name).resolve().is_relative_to(root):
        return f"it resolves outside {destination}"
    return None
