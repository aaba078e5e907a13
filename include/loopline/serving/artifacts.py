"""A model's files (the Keras file and a SavedModel export) and compiled inference over it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.registry.layout import MODEL_FILE, SAVED_MODEL_DIR

if TYPE_CHECKING:  # TensorFlow loads on first use (mypy reads Keras, which ships no types, as Any)
    import keras

# A compiled inference function: one tensor per feature, by name, in; a tensor of scores out.
ServingFunction = Callable[[Mapping[str, Any]], Any]

__all__ = [
    "MODEL_FILE",
    "SAVED_MODEL_DIR",
    "ServingFunction",
    "compiled",
    "load_model",
    "save_artifacts",
]


def save_artifacts(model: keras.Model, folder: Path | str) -> None:
    """The Keras file (to retrain or evaluate) and a SavedModel export (to serve)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    model.export(str(folder / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)


def load_model(folder: Path | str) -> keras.Model:
    """Load a saved model; a file that is not a Keras model fails here, loudly.

    Safe mode, spelled out: a model comes from a bucket others can write to, and safe mode
    refuses the parts of a Keras file that run code when loaded (a Lambda layer's
    marshalled Python function).
    """
    import keras

    return keras.saving.load_model(Path(folder) / MODEL_FILE, safe_mode=True)


def compiled(model: keras.Model, **options: Any) -> ServingFunction:
    """The model as one compiled inference function (dropout off): calling a Keras model
    eagerly, or through `predict`, is many times slower per batch."""
    import tensorflow as tf

    # reduce_retracing: batches of every size (a consumer's micro-batches, a file's last
    # rows) share one generalised trace instead of one trace each (tens of ms apiece).
    options.setdefault("reduce_retracing", True)
    return tf.function(lambda inputs: model(inputs, training=False), **options)
