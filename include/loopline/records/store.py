"""Where records live: ``s3://<bucket>/records/<pipeline>/<stage>/<run>/<subject>.json``.

A retried task writes its record again (the newest try wins); everything else is written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError

from loopline.records.envelope import RecordStage, StageRecord
from loopline.storage.keys import safe_segment
from loopline.storage.objects import ObjectStore

RECORDS_PREFIX = "records/"


class RecordError(Exception):
    """A record that is missing or not a record."""


READERS = 8  # records read at once by `latest`


class RecordStore:
    def __init__(self, store: ObjectStore, bucket: str, prefix: str = RECORDS_PREFIX) -> None:
        self.store, self.bucket, self.prefix = store, bucket, prefix

    def key(self, pipeline: str, stage: RecordStage, run_id: str, subject: str = "run") -> str:
        run = safe_segment(run_id)
        return f"{self.stage_prefix(pipeline, stage)}{run}/{safe_segment(subject)}.json"

    def stage_prefix(self, pipeline: str, stage: RecordStage | None = None) -> str:
        return f"{self.prefix}{pipeline}/" + (f"{RecordStage(stage)}/" if stage else "")

    def write(self, record: StageRecord) -> str:
        """Write `record`; returns its key."""
        key = self.key(record.pipeline, record.stage, record.run_id, record.subject)
        body = record.model_dump_json(indent=2).encode()
        self.store.put(self.bucket, key, body, "application/json")
        return key

    def read(
        self, pipeline: str, stage: RecordStage, run_id: str, subject: str = "run"
    ) -> StageRecord:
        key = self.key(pipeline, stage, run_id, subject)
        if self.store.head(self.bucket, key) is None:
            raise RecordError(
                f"no {stage} record for {pipeline} run {run_id} (s3://{self.bucket}/{key})"
            )
        return self._parse(key)

    def records(
        self, pipeline: str, stage: RecordStage | None = None, run_id: str | None = None
    ) -> Iterator[StageRecord]:
        """Every record of a pipeline (of one stage, of one run), oldest first."""
        prefix = self.stage_prefix(pipeline, stage)
        keys = [k for k in self.store.list_keys(self.bucket, prefix) if k.endswith(".json")]
        found = (self._parse(key) for key in keys)
        selected = [r for r in found if run_id is None or r.run_id == run_id]
        yield from sorted(selected, key=lambda record: (record.started_at, record.ended_at))

    def latest(self, pipeline: str, stage: RecordStage, limit: int) -> list[StageRecord]:
        """The `limit` records of one stage written last, oldest first: a view of a pipeline
        that has run for months reads a page, not every record it ever wrote."""
        listed = self.store.list_modified(self.bucket, self.stage_prefix(pipeline, stage))
        newest = sorted((when, key) for key, when in listed if key.endswith(".json"))[-limit:]
        # One GET each: a few at once (boto3's clients are thread-safe), a page in ~100 ms.
        with ThreadPoolExecutor(max_workers=READERS) as readers:
            found = list(readers.map(self._parse, [key for _, key in newest]))
        return sorted(found, key=lambda record: (record.started_at, record.ended_at))

    def _parse(self, key: str) -> StageRecord:
        try:
            return StageRecord.model_validate_json(self.store.get(self.bucket, key))
        except ValidationError as exc:
            raise RecordError(f"s3://{self.bucket}/{key} is not a stage record: {exc}") from exc
