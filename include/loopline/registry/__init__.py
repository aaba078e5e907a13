"""Model registry on S3: versions with lineage, champion/challenger aliases, rollback.

``layout`` (where things live) is importable alone, without boto: the plan asks it for the
champion asset at DAG-parse time. The registry itself is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.registry.layout import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from loopline.registry.registry import (
        AliasConflict,
        AliasMove,
        AliasNotSet,
        CorruptModelError,
        ModelRegistry,
        ModelVersion,
        RegistryError,
        UnsafeArtifactError,
    )


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasConflict",
    "AliasMove",
    "AliasNotSet",
    "CorruptModelError",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "UnsafeArtifactError",
]
_LAZY = set(__all__) - {"CHALLENGER", "CHAMPION"}  # found in loopline.registry.registry


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from loopline.registry import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
