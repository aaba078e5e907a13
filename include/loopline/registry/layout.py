"""Where the registry keeps a model's versions and aliases: the one place that knows the layout.

Other layers (the plan's champion asset, decision records) ask here instead of rebuilding paths.
"""

from __future__ import annotations

from loopline.storage.keys import safe_segment

MODELS_PREFIX = "models/"
CHAMPION, CHALLENGER = "champion", "challenger"


def model_prefix(name: str, prefix: str = MODELS_PREFIX) -> str:
    return f"{prefix}{name}/"


def training_run_prefix(name: str, run_id: str, prefix: str = MODELS_PREFIX) -> str:
    """Where one training run keeps its snapshot (train and holdout tables) and state."""
    return f"{model_prefix(name, prefix)}runs/{safe_segment(run_id)}/"


def version_prefix(name: str, version: int, prefix: str = MODELS_PREFIX) -> str:
    """Where a version's files live."""
    return f"{model_prefix(name, prefix)}versions/{version:06d}/"


def alias_prefix(name: str, alias: str, prefix: str = MODELS_PREFIX) -> str:
    """Where an alias's log of moves lives; its newest entry says where the alias points."""
    return f"{model_prefix(name, prefix)}aliases/{alias}/"
