"""One record shape for every decision and run of the loop, in one place on S3.

A validation outcome, a training snapshot, a registered model, a judgement, a promotion or
rollback, a batch scoring run (and next a drift verdict or a scaling step) is a
``StageRecord``: the same envelope (pipeline, stage, run, Airflow task and try, code version,
inputs and outputs with checksums, verdict, reasons, numbers, start and end, resources) around
the stage's own payload. ``RecordStore`` writes and reads them all under one layout; trace,
cost per stage and the UI read only this.
"""

from loopline.records.model import ObjectRef, RecordStage, RunContext, StageRecord
from loopline.records.store import RecordStore

__all__ = ["ObjectRef", "RecordStage", "RecordStore", "RunContext", "StageRecord"]
