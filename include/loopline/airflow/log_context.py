"""Pipeline, stage, run and model version on every log line of a Loopline task.

Airflow's Task SDK writes a task's log as JSON lines (``attempt=N.log``), through structlog,
stdlib ``logging`` lines (``self.log``) included, and adds structlog's context variables to
each. So a key bound here is on every later line of the task: `bind_task` at the start of each
try (the ``on_execute_callback`` every Loopline task has), `bind_model_version` once the task
knows which version it works with.

Airflow runs ``execute`` in a copy of the task's context: a version bound there is on the
lines of ``execute``, not on the lines Airflow writes after it.
"""

from __future__ import annotations

from typing import Any

import structlog

# The keys Loopline adds; Airflow's own are dag_id, task_id, run_id, try_number, map_index.
PIPELINE, STAGE, RUN, MODEL_VERSION = "pipeline", "stage", "run_id", "model_version"


def bind_task(pipeline: str, stage: str, run_id: str) -> None:
    """Start a try's context: its pipeline, stage and run, no model version yet (a process
    that runs several tasks, like ``dag.test()``, keeps no version from the one before)."""
    structlog.contextvars.unbind_contextvars(MODEL_VERSION)
    structlog.contextvars.bind_contextvars(**{PIPELINE: pipeline, STAGE: stage, RUN: run_id})


def bind_model_version(version: Any) -> None:
    """The model version the task works with, from here on: a number, or an alias
    (``champion``) until it is resolved."""
    if version is None or str(version).strip() == "":
        raise ValueError("bind_model_version: no version given (None or empty)")
    structlog.contextvars.bind_contextvars(**{MODEL_VERSION: str(version)})


def bound() -> dict[str, Any]:
    """Loopline's keys as bound now."""
    context = structlog.contextvars.get_contextvars()
    return {k: context[k] for k in (PIPELINE, STAGE, RUN, MODEL_VERSION) if k in context}


__all__ = ["bind_model_version", "bind_task", "bound"]
