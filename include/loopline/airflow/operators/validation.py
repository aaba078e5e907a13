"""Operators of the validation gate: wait for landed files, validate each, publish, judge."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from loopline.validation.gate import GateResult

from loopline.airflow.lineage import ReportsLineage, TaskLineage, routed_files, s3_object, s3_uri
from loopline.airflow.operators.base import ObjectStoreOperator, PipelineOperator, announce


class WaitForLandedFilesSensor(ReportsLineage, S3KeySensor):
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
        self.waited = f"s3://{bucket}/{prefix} for {timeout_minutes} min (validation.wait_minutes)"
        self.watched = s3_object(bucket, prefix)

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The landing prefix it watches."""
        return TaskLineage.of(inputs=[self.watched])

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """A wait that ended with nothing landed says so, not only "soft_fail"."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as exc:
            message = f"nothing landed: watched {self.waited}; this run validates nothing"
            self.log.warning("%s", message)
            raise AirflowSkipException(message) from exc


class GroupLandedOperator(ObjectStoreOperator):
    """Return the landed files to validate, oldest name first, at most `max_keys` of them, in
    groups of one task each (``loopline.validation.grouping``)."""

    template_fields = ("bucket", "prefix")

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        max_keys: int,
        files_per_task: int,
        bytes_per_task: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket, self.prefix, self.max_keys = bucket, prefix, max_keys
        self.files_per_task, self.bytes_per_task = files_per_task, bytes_per_task

    def execute(self, context: Context) -> list[list[str]]:
        from loopline.validation.grouping import Landed, group_files

        listed = self.store.list_sizes(self.bucket, self.prefix)
        files = sorted(Landed(key, size) for key, size in listed if key[-1] != "/")
        if not files:  # another run took them, or nothing landed: nothing to wait for
            raise AirflowSkipException(
                f"nothing to validate: s3://{self.bucket}/{self.prefix} is empty; this run ends"
            )
        if len(files) > self.max_keys:
            self.log.info(
                "%d files landed; this run takes the first %d, the next run the rest",
                len(files),
                self.max_keys,
            )
        taken = files[: self.max_keys]
        groups = group_files(taken, self.files_per_task, self.bytes_per_task)
        self.log.info(
            "%d file(s), %.1f MiB, to validate under s3://%s/%s in %d task(s)",
            len(taken),
            sum(f.size for f in taken) / 2**20,
            self.bucket,
            self.prefix,
            len(groups),
        )
        return groups

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The landing prefix it lists."""
        return TaskLineage.of(inputs=[s3_object(self.bucket, self.prefix)])


class ValidateFilesOperator(PipelineOperator):
    """Validate a group of landed files against their pipeline's suite and route each (see
    ``loopline.validation.gate``); each file's outcome is logged and recorded. Quarantine is
    not an error here; a file that cannot be validated at all fails the task after the rest
    of the group is done (a retry finds those already routed and reports where they went).
    A file too large to read (spec: validation.max_*) is quarantined unread, and one whose
    validation killed the task twice (out of memory) is quarantined on the next try, so the
    files behind it in the group are validated."""

    template_fields = ("keys",)
    ui_color = "#e8f5e9"

    def __init__(self, *, suite_path: str, keys: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite_path, self.keys = suite_path, keys

    @property
    def map_label(self) -> str:
        """The UI's name of this mapped task: its files (see ``map_index_template``)."""
        from loopline.validation.grouping import group_label

        return group_label(self.keys, self.spec.data.landing_prefix)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from loopline.data.reading import ReadLimits
        from loopline.validation.gate import RowSplitPolicy, validate_and_route
        from loopline.validation.replays import KeyCache
        from loopline.validation.suites import load_suite

        gate, suite = self.spec.validation, load_suite(self.suite_path)
        row_split = RowSplitPolicy(gate.max_rejected_row_share) if gate.row_split else None
        limits = ReadLimits.of(gate)  # past them a file is quarantined, never OOM-killed
        run, cache = self.run_context(context), KeyCache()
        results, errors = [], []
        self.log.info("validating %d file(s): %s", len(self.keys), self.map_label)
        for key in self.keys:
            started = time.perf_counter()
            try:
                result = validate_and_route(
                    self.store,
                    self.spec.data,
                    suite,
                    key,
                    row_split=row_split,
                    duplicate_keys=gate.duplicate_keys,
                    run=run,
                    known_keys=cache,
                    limits=limits,
                )
            except Exception as exc:
                self.log.exception("%s could not be validated; it stays in landing", key)
                errors.append(f"{key}: {type(exc).__name__}: {exc}")
                continue
            took = time.perf_counter() - started
            log = {"validated": self.log.info, "split": self.log.warning}
            log.get(result.disposition, self.log.error)("%s (%.2f s)", result.summary(), took)
            results.append(result.to_dict())
        if errors:  # what was routed stays reported: downstream runs on ALL_DONE
            context["ti"].xcom_push(key="return_value", value=results)
            self.keep_outcome(results)
            raise AirflowException(
                f"{len(errors)} of {len(self.keys)} file(s) could not be validated:\n"
                + "\n".join(errors)
            )
        return results

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The landed files it was given; at the end, where each went (`routed_files`)."""
        bucket = self.spec.data.bucket
        given = TaskLineage.of(inputs=[s3_object(bucket, key) for key in self.keys])
        return given + routed_files(bucket, outcome or [])


def _results(groups: Any) -> list[GateResult]:
    """The GateResults of the validate task's map indexes that returned some: its output
    holds one list per map index (a failed index pushes what it routed before failing)."""
    from loopline.validation.gate import GateResult

    return [GateResult(**item) for group in groups or () if group for item in group]


class PublishValidatedOperator(ReportsLineage, BaseOperator):
    """Emit one event of the validated asset listing the files of this run that passed.

    :param results: the validate task's output (templated): a list of results per map index.
    """

    template_fields = ("results",)

    def __init__(self, *, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results = results

    def execute(self, context: Context) -> dict[str, Any]:
        passed = [r for r in _results(self.results) if r.passed]
        if not passed:
            raise AirflowSkipException("no file passed validation in this run; no event")
        extra = {
            "keys": [r.destination for r in passed],
            "rows": sum(r.accepted_rows or 0 for r in passed),
        }
        announce(context, self.outlets, extra)
        self.log.info("published %d validated file(s), %d rows", len(passed), extra["rows"])
        return extra

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The validated asset it emits an event of (the files are the validate task's)."""
        if outcome is None:
            return TaskLineage()
        return TaskLineage.of(outputs=[s3_uri(outlet.uri) for outlet in self.outlets])


class ValidationVerdictOperator(PipelineOperator):
    """Judge the run (``loopline.validation.verdict.judge_run``, which records the verdict),
    and fail it naming every file that did not pass and why.

    :param results: the validate task's output (templated).
    :param keys: the listing task's output (templated): the groups of files listed.
    :param fail_on_invalid: fail the run when a file was quarantined (spec).
    """

    template_fields = ("results", "keys")

    def __init__(self, *, results: Any, keys: Any, fail_on_invalid: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results, self.keys, self.fail_on_invalid = results, keys, fail_on_invalid
        # The listing task, to tell a listing that found nothing from one that failed.
        self.listing = keys.operator.task_id if hasattr(keys, "operator") else None

    def execute(self, context: Context) -> dict[str, int]:
        from loopline.validation.verdict import judge_run

        keys = [key for group in self.keys or () for key in group]
        if not keys:
            if self.listing is None or self._listing_skipped(context, self.listing):
                raise AirflowSkipException("no file was listed in this run")
            # A failed listing (S3 unreachable...) must not end as a green run.
            raise AirflowFailException(f"{self.listing} failed: no file could be listed")
        verdict = judge_run(
            self.store,
            self.spec.data.bucket,
            keys,
            _results(self.results),
            self.fail_on_invalid,
            self.run_context(context),
        )
        self.log.info("verdict: %s", verdict.counts)
        if verdict.problems:  # the cause carries the failed files for the debug bundle
            failure = verdict.failure(self.store, self.spec.data.bucket)
            raise AirflowFailException(str(failure)) from failure
        for result in verdict.quarantined:
            self.log.warning("quarantined (run not failed, by spec): %s", result.source)
        for result in verdict.split:
            self.log.warning("split: %s", result.summary())
        return verdict.counts

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The objects the validate tasks routed, which it judges."""
        results = [result.to_dict() for result in _results(self.results)]
        return TaskLineage.of(inputs=routed_files(self.spec.data.bucket, results).outputs)

    def _listing_skipped(self, context: Context, listing: str) -> bool:
        ti = context["ti"]
        skipped = ti.get_ti_count(
            dag_id=ti.dag_id, task_ids=[listing], run_ids=[ti.run_id], states=["skipped"]
        )
        return skipped > 0
