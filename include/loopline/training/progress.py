"""Per-epoch progress in the task log: users watch a long training move."""

from __future__ import annotations

import logging
import time
from typing import Any

import keras


class LogProgress(keras.callbacks.Callback):
    def __init__(self, log: logging.Logger | Any) -> None:
        super().__init__()
        self.log = log
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        seconds = time.perf_counter() - self._started
        numbers = " ".join(f"{name}={value:.4f}" for name, value in sorted(logs.items()))
        total = self.params.get("epochs", "?")
        self.log.info("epoch %d/%s in %.1fs: %s", epoch + 1, total, seconds, numbers)
