"""Where the registry keeps a model's versions and aliases: the one place that knows the layout.

Other layers (the plan's champion asset, decision records) ask here instead of rebuilding paths.
"""

from __future__ import annotations

from typing import Literal

from loopline.storage.keys import safe_segment

MODELS_PREFIX = "models/"
CHAMPION, CHALLENGER = "champion", "challenger"
# A version's artifacts: the Keras file (to retrain or evaluate) and a SavedModel export (to
# serve). The registry accepts no other names (``registry.artifacts``).
MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"


def model_prefix(name: str, prefix: str = MODELS_PREFIX) -> str:
    return f"{prefix}{name}/"


def training_run_prefix(name: str, run_id: str, prefix: str = MODELS_PREFIX) -> str:
    """Where one training run keeps its snapshot (train and holdout tables) and state."""
    return f"{model_prefix(name, prefix)}runs/{safe_segment(run_id)}/"


SnapshotTable = Literal["train", "holdout"]


def snapshot_table_key(
    name: str, run_id: str, table: SnapshotTable, prefix: str = MODELS_PREFIX
) -> str:
    """A training run's snapshot table, in Parquet: the rows it trained on ("train") and was
    judged on ("holdout"). Written by the run's snapshot task, read by its next tasks and by
    the drift reference of the version it registered."""
    return f"{training_run_prefix(name, run_id, prefix)}{table}.parquet"


def version_prefix(name: str, version: int, prefix: str = MODELS_PREFIX) -> str:
    """Where a version's files live."""
    return f"{model_prefix(name, prefix)}versions/{version:06d}/"


def alias_prefix(name: str, alias: str, prefix: str = MODELS_PREFIX) -> str:
    """Where an alias's log of moves lives; its newest entry says where the alias points."""
    return f"{model_prefix(name, prefix)}aliases/{alias}/"
