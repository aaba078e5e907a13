"""Train the spec's Keras model on a snapshot: seeded, early-stopped, GPU when there is one.

The model takes raw columns by name (one input per feature) and holds its own preprocessing:
a Normalization layer adapted on the training rows and a StringLookup + Embedding per
categorical feature. Serving (Spark, Kafka consumers) feeds it rows as they are stored.

TensorFlow is imported inside functions, so importing this module costs nothing until a model
is built. Inputs, the saved format and inference live in ``loopline.serving``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from loopline.serving.inputs import as_tensors, features_of, labels_of
from loopline.spec.sections import ModelSpec, TrainingSpec

if TYPE_CHECKING:  # imported inside the functions; mypy reads both as Any (no types shipped)
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

EARLY_STOPPING_SHARE = 0.1  # of the training rows, held back to stop on (never the holdout)


@dataclass(frozen=True)
class TrainingOutcome:
    model: keras.Model
    device: str  # "GPU:0 (mixed precision, XLA)" or "CPU"
    epochs_run: int
    samples_per_second: float
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    max_epochs: int = 0  # the limit it ran under (early stopping may end it sooner)


def pick_device(training: TrainingSpec) -> tuple[str, bool]:
    """("GPU:0", True) when a GPU is visible and the spec allows it, else ("CPU", False)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU") if training.use_gpu_if_available else []
    return ("GPU:0", True) if gpus else ("CPU", False)


def build_model(
    spec: ModelSpec, train: dict[str, np.ndarray], *, on_gpu: bool = False
) -> keras.Model:
    """An MLP over normalised numbers and embedded categories, preprocessing inside."""
    import keras

    inputs = {
        name: keras.Input(shape=(1,), name=name, dtype="float32") for name in spec.features.numeric
    }
    numeric = keras.layers.Concatenate(name="numeric")(list(inputs.values()))
    # Statistics computed here in one pass, given to the layers: what `adapt` would learn,
    # without its batch-by-batch pass over the data (3.9 s -> 0.2 s on 720k rows).
    matrix = np.concatenate([train[name] for name in spec.features.numeric], axis=1)
    normalizer = keras.layers.Normalization(
        name="normalize", mean=matrix.mean(axis=0), variance=matrix.var(axis=0)
    )
    parts = [normalizer(numeric)]
    for name in spec.features.categorical:
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="string")
        lookup = keras.layers.StringLookup(
            name=f"{name}_lookup", num_oov_indices=1, vocabulary=vocabulary(train[name])
        )
        embedded = keras.layers.Embedding(
            lookup.vocabulary_size(), spec.architecture.embedding_dim, name=f"{name}_embedding"
        )(lookup(inputs[name]))
        parts.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    hidden = keras.layers.Concatenate(name="features")(parts)
    for index, units in enumerate(spec.architecture.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(hidden)
        if spec.architecture.dropout:
            hidden = keras.layers.Dropout(spec.architecture.dropout, name=f"dropout_{index}")(
                hidden
            )
    # float32 output even under mixed precision: stable sigmoid and loss.
    score = keras.layers.Dense(1, activation="sigmoid", name="score", dtype="float32")(hidden)
    model = keras.Model(inputs=inputs, outputs=score, name="loopline_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(spec.hyperparameters.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
        jit_compile=on_gpu,  # XLA fuses the small dense layers on a GPU; no gain on CPU here
    )
    return model


def vocabulary(values: np.ndarray) -> list[str]:
    """Distinct values, most frequent first (ties by value), as StringLookup.adapt orders them."""
    distinct, counts = np.unique(values.reshape(-1).astype(str), return_counts=True)
    order = sorted(range(len(distinct)), key=lambda i: (-counts[i], distinct[i]))
    return [str(distinct[i]) for i in order]


def train_model(
    train: pa.Table,
    model_spec: ModelSpec,
    training: TrainingSpec,
    *,
    epochs: int | None = None,
    progress: keras.callbacks.Callback | None = None,
) -> TrainingOutcome:
    """Fit the spec's model on `train`; stop early on a slice of it held back for that."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(training.seed)
    device, on_gpu = pick_device(training)
    if on_gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("float32")
        tf.config.experimental.enable_op_determinism()
    features, labels = features_of(train, model_spec), labels_of(train, model_spec)
    order = np.random.default_rng(training.seed).permutation(train.num_rows)  # stop/fit split
    stop_rows = max(1, int(train.num_rows * EARLY_STOPPING_SHARE))
    fit_idx, stop_idx = order[stop_rows:], order[:stop_rows]
    fit_features = {name: values[fit_idx] for name, values in features.items()}
    stop_features = {name: values[stop_idx] for name, values in features.items()}
    with tf.device(device):
        model = build_model(model_spec, fit_features, on_gpu=on_gpu)
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=training.early_stopping_patience,
                restore_best_weights=True,
            )
        ]
        if progress is not None:
            callbacks.append(progress)
        started = time.perf_counter()
        batch_size = model_spec.hyperparameters.batch_size
        max_epochs = epochs or model_spec.hyperparameters.epochs
        history = model.fit(
            batches(fit_features, labels[fit_idx], batch_size, shuffle_seed=training.seed),
            validation_data=batches(stop_features, labels[stop_idx], batch_size),
            epochs=max_epochs,
            callbacks=callbacks,
            shuffle=False,  # the dataset reshuffles its batches itself
            verbose=0,
        )
        seconds = time.perf_counter() - started
    epochs_run = len(history.history["loss"])
    samples_per_second = len(fit_idx) * epochs_run / seconds
    label = f"{device} (mixed precision, XLA)" if on_gpu else device
    log.info(
        "trained on %s: %d epochs, %d rows, %.0f samples/s",
        label,
        epochs_run,
        len(fit_idx),
        samples_per_second,
    )
    return TrainingOutcome(
        model, label, epochs_run, samples_per_second, seconds, dict(history.history), max_epochs
    )


def batches(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches sliced straight out of whole-column tensors (rows were permuted once before);
    with a seed the batch order is reshuffled every epoch. 2.4x faster to train on than
    Keras' own slicing of tensors and than tf.data's per-row slices (720k rows, 2 epochs:
    4.8 s vs 11.8 s and 10.4 s here)."""
    import tensorflow as tf

    columns, targets = as_tensors(features), tf.constant(labels, dtype=tf.float32)
    count = -(-len(labels) // batch_size)

    def batch(index: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        rows = slice(index * batch_size, (index + 1) * batch_size)
        return {name: values[rows] for name, values in columns.items()}, targets[rows]

    data = tf.data.Dataset.range(count).map(batch, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle_seed is not None:
        data = data.cache().shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.prefetch(tf.data.AUTOTUNE)
