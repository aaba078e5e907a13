"""The keys Loopline puts on its tasks' log lines (``loopline.airflow.log_context``)."""

from __future__ import annotations

import pytest
import structlog
from loopline.airflow.log_context import bind_model_version, bind_task, bound


@pytest.fixture(autouse=True)
def clean_context():
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def test_a_task_binds_pipeline_stage_and_run_then_its_model_version() -> None:
    bind_task("card_fraud", "train_model", "manual__1")
    assert bound() == {"pipeline": "card_fraud", "stage": "train_model", "run_id": "manual__1"}

    bind_model_version(7)

    assert bound()["model_version"] == "7"


def test_a_new_task_starts_without_the_last_ones_model_version() -> None:
    bind_task("card_fraud", "judge_candidate", "manual__1")
    bind_model_version("champion")

    bind_task("card_fraud", "validate_files", "manual__2")

    assert bound() == {"pipeline": "card_fraud", "stage": "validate_files", "run_id": "manual__2"}


def test_the_bound_keys_are_on_a_structlog_line() -> None:
    bind_task("card_fraud", "batch_score", "manual__3")
    bind_model_version(4)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as lines:
        structlog.get_logger().info("scored", rows=10)

    assert lines == [
        {
            "event": "scored",
            "rows": 10,
            "log_level": "info",
            "pipeline": "card_fraud",
            "stage": "batch_score",
            "run_id": "manual__3",
            "model_version": "4",
        }
    ]


@pytest.mark.parametrize("version", [None, "", " "])
def test_no_version_is_refused(version) -> None:
    with pytest.raises(ValueError, match="no version given"):
        bind_model_version(version)
