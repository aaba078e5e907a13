"""Model registry on S3: versions with lineage, champion/challenger aliases, rollback."""

from loopline.registry.registry import (
    CHALLENGER,
    CHAMPION,
    AliasConflict,
    AliasMove,
    CorruptModelError,
    ModelRegistry,
    ModelVersion,
    RegistryError,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasConflict",
    "AliasMove",
    "CorruptModelError",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
]
