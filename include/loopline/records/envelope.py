"""The record envelope, and the run context that stamps it."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loopline.records.lineage import code_version


class RecordStage(StrEnum):
    """What a record is about; each stage's records live in their own folder."""

    VALIDATION = "validation"
    SNAPSHOT = "snapshot"
    TRAINING = "training"
    JUDGEMENT = "judgement"
    PROMOTION = "promotion"
    ROLLBACK = "rollback"
    BATCH_SCORING = "batch_scoring"
    DRIFT = "drift"
    STREAMING = "streaming"
    FAILURE = "failure"  # a failed try of any task, pointing to its debug bundle
    REPRODUCTION = "reproduction"  # a version retrained from its record, compared
    COST = "cost"  # what one try of any task used: seconds, memory, bytes
    REPLAY = "replay"  # quarantined files requeued, dead letters re-produced
    SHADOW = "shadow"  # a challenger judged on live traffic beside the champion


class ObjectRef(BaseModel):
    """An object a stage read or wrote."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    sha256: str | None = None
    rows: int | None = None


class StageRecord(BaseModel):
    """One decision or run of one stage, yes or no, with its numbers and reasons."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_version: Literal[1] = 1
    pipeline: str
    stage: RecordStage
    run_id: str
    subject: str = "run"  # what in the run it is about: "run", or one file of it
    dag_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    code_version: str
    spec_sha256: str | None = None  # the version of the pipeline's spec the run used
    inputs: list[ObjectRef] = Field(default_factory=list)
    outputs: list[ObjectRef] = Field(default_factory=list)
    verdict: str  # e.g. passed, quarantined, registered, promote, refuse, champion, scored
    reasons: list[str] = Field(default_factory=list)
    numbers: dict[str, float] = Field(default_factory=dict)
    started_at: datetime
    ended_at: datetime
    resources: dict[str, Any] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)  # the stage's own record, as it was


@dataclass(frozen=True)
class RunContext:
    """Who is running: the pipeline, the run, and (under Airflow) the DAG, task and try."""

    pipeline: str
    run_id: str
    dag_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    spec_sha256: str | None = None  # the spec file's version the task was planned from
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def by(self) -> str:
        """Who moves an alias in this run, as the registry's history records it."""
        return f"airflow:{self.dag_id}/{self.run_id}" if self.dag_id else f"run:{self.run_id}"

    def record(self, stage: RecordStage, verdict: str, **fields: Any) -> StageRecord:
        """A record of this run, ending now, with the process's resources so far."""
        return StageRecord(
            pipeline=self.pipeline,
            stage=stage,
            run_id=self.run_id,
            dag_id=self.dag_id,
            task_id=self.task_id,
            try_number=self.try_number,
            code_version=code_version(),
            spec_sha256=self.spec_sha256,
            verdict=verdict,
            started_at=fields.pop("started_at", self.started_at),
            ended_at=datetime.now(UTC),
            resources={**process_resources(), **fields.pop("resources", {})},
            **fields,
        )


def process_resources() -> dict[str, float]:
    """CPU seconds and peak memory of this process so far: what cost per stage adds up."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS
    return {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }
