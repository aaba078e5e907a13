"""Great Expectations, imported quietly.

On import GE logs a line for every public function it skips registering (about 200 of them),
re-declares metrics at info level, and draws a progress bar per validation: a task log would
open with hundreds of lines before Loopline says what it read and where the file went. Its
loggers are raised to WARNING before the first import, and its progress bars are off.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from great_expectations.data_context import EphemeralDataContext

NOISY_LOGGERS = (
    "great_expectations._docs_decorators",  # "Skipping registering function ... closure"
    "great_expectations.expectations.registry",  # "Multiple declarations of metric ..."
    "great_expectations.data_context",
    "great_expectations.datasource",
)


def great_expectations() -> ModuleType:
    """The ``great_expectations`` module, its import-time chatter silenced."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def quiet_context() -> EphemeralDataContext:
    """An ephemeral data context that draws no progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = great_expectations().get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context
