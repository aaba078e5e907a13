"""One served model per process and version: downloaded (every checksum verified), loaded and
compiled once, then reused by every batch a Spark worker or a consumer scores. Its downloaded
files are removed as soon as it is loaded."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from loopline.registry.registry import ModelRegistry
from loopline.serving.artifacts import ServingFunction, compiled, load_model

_SERVED: dict[tuple[str, int, str], ServingFunction] = {}


def served_model(
    name: str, version: int, registry: Callable[[], ModelRegistry], fingerprint: str = ""
) -> ServingFunction:
    """The compiled inference function of `name` version `version`, cached per process;
    `registry` is called only on the first use (a client costs tens of milliseconds).
    `fingerprint` (``ModelVersion.fingerprint``) keeps apart same-numbered versions of two
    registries in a process that outlives one job (a warm Spark Connect worker)."""
    key = (name, version, fingerprint)
    if key not in _SERVED:
        _SERVED[key] = _load_verified(name, version, registry())
    return _SERVED[key]


def _load_verified(name: str, version: int, registry: ModelRegistry) -> ServingFunction:
    # Once loaded the model lives in memory and nothing reads its files again, so the folder
    # goes as soon as it is loaded (or fails to): a replica that rolls through many versions
    # would otherwise leave one folder per version on its disk.
    with tempfile.TemporaryDirectory(prefix=f"loopline-{name}-v{version}-") as folder:
        registry.download(name, version, Path(folder))
        model = load_model(folder)
    return compiled(model)


def forget(name: str, version: int, fingerprint: str = "") -> None:
    """Drop a version no longer served (a replica switched to another), freeing its memory."""
    _SERVED.pop((name, version, fingerprint), None)


def is_loaded(name: str, version: int, fingerprint: str = "") -> bool:
    """Whether this process already holds `name` version `version` (a warm worker)."""
    return (name, version, fingerprint) in _SERVED
