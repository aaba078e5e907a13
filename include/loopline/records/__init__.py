"""One record shape for every decision and run of the loop, in one place on S3.

A validation outcome, a training snapshot, a registered model, a judgement, a promotion or
rollback, a batch scoring run, a drift audit or a streaming deployment step is a
``StageRecord`` (one ``RecordStage`` each): the same envelope (pipeline, stage, run, Airflow
task and try, code version, inputs and outputs with checksums, verdict, reasons, numbers,
start and end, resources) around the stage's own payload. ``RecordStore`` writes and reads
them all under one layout; ``loopline records`` and ``loopline drift history`` read only this.
"""

from loopline.records.envelope import ObjectRef, RecordStage, RunContext, StageRecord
from loopline.records.store import RecordStore

__all__ = ["ObjectRef", "RecordStage", "RecordStore", "RunContext", "StageRecord"]
