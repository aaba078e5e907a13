"""One served model per process and version: downloaded (every checksum verified), loaded and
compiled once, then reused by every batch a Spark worker or a consumer scores."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopline.registry.registry import ModelRegistry
from loopline.serving.model import compiled, load_model

_SERVED: dict[tuple[str, int], Any] = {}


def served_model(name: str, version: int, registry: Callable[[], ModelRegistry]) -> Any:
    """The compiled inference function of `name` version `version`, cached per process;
    `registry` is called only on the first use (a client costs tens of milliseconds)."""
    key = (name, version)
    if key not in _SERVED:
        folder = Path(tempfile.mkdtemp(prefix=f"loopline-{name}-v{version}-"))
        registry().download(name, version, folder)
        _SERVED[key] = compiled(load_model(folder))
    return _SERVED[key]


def forget(name: str, version: int) -> None:
    """Drop a version no longer served (a replica switched to another), freeing its memory."""
    _SERVED.pop((name, version), None)
