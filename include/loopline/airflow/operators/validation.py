"""Operators of the validation gate: wait for landed files, validate each, publish, judge."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


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


class ListObjectsOperator(BaseOperator):
    """Return the keys under `prefix`, oldest name first, at most `max_keys` of them."""

    template_fields = ("bucket", "prefix")

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        max_keys: int,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket, self.prefix, self.max_keys = bucket, prefix, max_keys
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> list[str]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        keys = sorted(S3Hook(aws_conn_id=self.aws_conn_id).list_keys(self.bucket, self.prefix))
        keys = [key for key in keys if not key.endswith("/")]
        if len(keys) > self.max_keys:
            self.log.info(
                "%d files landed; this run takes the first %d, the next run the rest",
                len(keys),
                self.max_keys,
            )
        self.log.info(
            "%d file(s) to validate under s3://%s/%s",
            min(len(keys), self.max_keys),
            self.bucket,
            self.prefix,
        )
        return keys[: self.max_keys]


class ValidateBatchOperator(BaseOperator):
    """Validate one landed file against its pipeline's suite and route it (see
    ``loopline.validation.gate``). Returns the GateResult; quarantine is not an error here."""

    template_fields = ("key",)
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        spec_path: str,
        suite_path: str,
        key: str,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("map_index_template", "{{ task.key }}")
        super().__init__(**kwargs)
        self.spec_path, self.suite_path, self.key = spec_path, suite_path, key
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from loopline.spec import load_spec
        from loopline.storage.objects import ObjectStore
        from loopline.validation.gate import RowSplitPolicy, validate_and_route
        from loopline.validation.suites import load_suite

        spec = load_spec(self.spec_path)
        suite = load_suite(self.suite_path)
        store = ObjectStore(S3Hook(aws_conn_id=self.aws_conn_id).get_conn())
        row_split = None
        if spec.validation.row_split:
            row_split = RowSplitPolicy(spec.validation.max_rejected_row_share)
        result = validate_and_route(store, spec.data, suite, self.key, row_split=row_split)
        if result.split:
            self.log.warning("%s", result.summary())
        elif result.passed:
            self.log.info("%s", result.summary())
        else:
            self.log.error("%s", result.summary())
        return {**asdict(result), "split": result.split}


def _results(context: Context, task_id: str) -> list[dict[str, Any]]:
    # Without map_indexes, Airflow 3 returns every map index of a mapped task.
    pulled = context["ti"].xcom_pull(task_ids=task_id)
    if pulled is None:
        return []
    if isinstance(pulled, dict):
        return [pulled]
    return [item for item in pulled if item]


class PublishValidatedOperator(BaseOperator):
    """Emit one event of the validated asset listing the files of this run that passed."""

    def __init__(self, *, results_from: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results_from = results_from

    def execute(self, context: Context) -> dict[str, Any]:
        passed = [r for r in _results(context, self.results_from) if r["passed"]]
        if not passed:
            raise AirflowSkipException("no file passed validation in this run; no event")
        extra = {
            "keys": [r["destination"] for r in passed],
            "rows": sum(r["accepted_rows"] or 0 for r in passed),
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info("published %d validated file(s), %d rows", len(passed), extra["rows"])
        return extra


class ValidationVerdictOperator(BaseOperator):
    """Fail the run, naming every quarantined file and why, when the spec says so; fail it
    too when a file could not be validated at all (it stays in landing for the next run).
    A row-level split does not fail the run: its good rows moved on, as the spec asked."""

    def __init__(
        self,
        *,
        spec_path: str,
        results_from: str,
        keys_from: str,
        fail_on_invalid: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.results_from, self.keys_from = results_from, keys_from
        self.fail_on_invalid = fail_on_invalid

    def execute(self, context: Context) -> dict[str, int]:
        keys = context["ti"].xcom_pull(task_ids=self.keys_from)
        if not keys:
            raise AirflowSkipException("no file was listed in this run")
        results = _results(context, self.results_from)
        quarantined = [r for r in results if not r["passed"]]
        split = [r for r in results if r.get("split")]
        unchecked = sorted(set(keys) - {r["source"] for r in results})
        counts = {
            "files": len(keys),
            "passed": len(results) - len(quarantined) - len(split),
            "split": len(split),
            "quarantined": len(quarantined),
            "unchecked": len(unchecked),
            "rows_rejected": sum(r["rejected_rows"] for r in results),
        }
        self.log.info("verdict: %s", counts)
        problems = (
            [
                f"  {r['source']} -> {r['destination']}: {'; '.join(r['reasons'])}"
                for r in quarantined
            ]
            if self.fail_on_invalid
            else []
        )
        problems += [
            f"  {key}: not validated (its task failed); it stays in landing" for key in unchecked
        ]
        if problems:
            raise AirflowFailException(
                f"{len(problems)} of {len(keys)} file(s) did not pass:\n" + "\n".join(problems)
            )
        for result in quarantined:
            self.log.warning("quarantined (run not failed, by spec): %s", result["source"])
        for result in split:
            self.log.warning(
                "split: %s rows of %s moved on, %s rows quarantined beside %s",
                result["accepted_rows"],
                result["source"],
                result["rejected_rows"],
                result["quarantine_key"],
            )
        return counts
