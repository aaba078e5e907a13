"""Operators of the validation gate: wait for landed files, validate each, publish, judge."""

from __future__ import annotations

import time
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.airflow.operators.base import ObjectStoreOperator, SpecOperator


class WaitForLandedFilesSensor(S3KeySensor):
    """Wait, deferred in the triggerer (no worker slot, no busy poll), for a file under
    `prefix`; when none comes within `timeout_minutes` the run is skipped, not failed."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        timeout_minutes: int,
        poll_seconds: int,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            bucket_name=bucket,
            bucket_key=f"{prefix}*",
            wildcard_match=True,
            deferrable=True,
            timeout=timeout_minutes * 60,
            poke_interval=poll_seconds,  # how often the triggerer lists the prefix
            soft_fail=True,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class ListObjectsOperator(ObjectStoreOperator):
    """Return the keys under `prefix`, oldest name first, at most `max_keys` of them."""

    template_fields = ("bucket", "prefix")

    def __init__(self, *, bucket: str, prefix: str, max_keys: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bucket, self.prefix, self.max_keys = bucket, prefix, max_keys

    def execute(self, context: Context) -> list[str]:
        keys = sorted(k for k in self.store.list_keys(self.bucket, self.prefix) if k[-1] != "/")
        if len(keys) > self.max_keys:
            self.log.info(
                "%d files landed; this run takes the first %d, the next run the rest",
                len(keys),
                self.max_keys,
            )
        if not keys:  # another run took them, or nothing landed: nothing to wait for
            raise AirflowSkipException(
                f"nothing to validate: s3://{self.bucket}/{self.prefix} is empty; this run ends"
            )
        taken = keys[: self.max_keys]
        self.log.info(
            "%d file(s) to validate under s3://%s/%s", len(taken), self.bucket, self.prefix
        )
        return taken


class ValidateBatchOperator(SpecOperator):
    """Validate one landed file against its pipeline's suite and route it (see
    ``loopline.validation.gate``); its outcome is recorded. Quarantine is not an error here."""

    template_fields = ("key",)
    ui_color = "#e8f5e9"

    def __init__(self, *, suite_path: str, key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite_path, self.key = suite_path, key

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.validation.gate import RowSplitPolicy, validate_and_route
        from loopline.validation.suites import load_suite

        gate = self.spec.validation
        row_split = RowSplitPolicy(gate.max_rejected_row_share) if gate.row_split else None
        started = time.perf_counter()
        result = validate_and_route(
            self.store,
            self.spec.data,
            load_suite(self.suite_path),
            self.key,
            row_split=row_split,
            duplicate_keys=gate.duplicate_keys,
            run=self.run_context(context),
        )
        log = {"validated": self.log.info, "split": self.log.warning}
        took = time.perf_counter() - started
        log.get(result.disposition, self.log.error)("%s (%.1f s)", result.summary(), took)
        return result.to_dict()


def _results(context: Context, task_id: str) -> list[Any]:
    """The GateResults of a mapped task's map indexes that returned one."""
    from loopline.validation.gate import GateResult

    # Without map_indexes, Airflow 3 returns every map index of a mapped task.
    pulled = context["ti"].xcom_pull(task_ids=task_id)
    if pulled is None:
        return []
    items = [pulled] if isinstance(pulled, dict) else [item for item in pulled if item]
    return [GateResult(**item) for item in items]


class PublishValidatedOperator(BaseOperator):
    """Emit one event of the validated asset listing the files of this run that passed."""

    def __init__(self, *, results_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results_from = results_from

    def execute(self, context: Context) -> dict[str, Any]:
        passed = [r for r in _results(context, self.results_from) if r.passed]
        if not passed:
            raise AirflowSkipException("no file passed validation in this run; no event")
        extra = {
            "keys": [r.destination for r in passed],
            "rows": sum(r.accepted_rows or 0 for r in passed),
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info("published %d validated file(s), %d rows", len(passed), extra["rows"])
        return extra


class ValidationVerdictOperator(SpecOperator):
    """Judge the run (``loopline.validation.verdict``), record the verdict, and fail the run
    naming every file that did not pass and why."""

    def __init__(
        self, *, results_from: str, keys_from: str, fail_on_invalid: bool, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.results_from, self.keys_from = results_from, keys_from
        self.fail_on_invalid = fail_on_invalid

    def execute(self, context: Context) -> dict[str, int]:
        from loopline.records import RecordStore
        from loopline.validation.verdict import run_verdict

        keys = context["ti"].xcom_pull(task_ids=self.keys_from)
        if not keys:
            raise AirflowSkipException("no file was listed in this run")
        verdict = run_verdict(keys, _results(context, self.results_from), self.fail_on_invalid)
        self.log.info("verdict: %s", verdict.counts)
        record = verdict.record(self.run_context(context), self.spec.data.bucket)
        RecordStore(self.store, self.spec.data.bucket).write(record)
        if verdict.problems:
            raise AirflowFailException(verdict.failure_message())
        for result in verdict.quarantined:
            self.log.warning("quarantined (run not failed, by spec): %s", result.source)
        for result in verdict.split:
            self.log.warning("split: %s", result.summary())
        return verdict.counts
