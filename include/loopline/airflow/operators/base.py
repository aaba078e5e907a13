"""What Loopline's operators share: the object store, and for an operator of one pipeline its
spec (the version its DAG was planned from), registry and records, each built once per task.

Two levels only: ``ObjectStoreOperator`` (S3 through ``aws_conn_id``) and ``PipelineOperator``
(one pipeline's spec and what hangs off it). Everything else is composition: hooks and the
stage libraries are attributes and calls, so an operator's ``execute`` reads as what it does.
Both report what their tasks read and wrote to OpenLineage (`ReportsLineage`: each operator's
``lineage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from loopline.airflow.hooks import ObjectStoreHook
from loopline.airflow.lineage import ReportsLineage

if TYPE_CHECKING:
    from loopline.records import RecordStore, RunContext
    from loopline.registry import ModelRegistry
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore


class ObjectStoreOperator(ReportsLineage, BaseOperator):
    """An operator that reads or writes S3 through ``aws_conn_id``."""

    def __init__(self, *, aws_conn_id: str = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> ObjectStoreHook:
        return ObjectStoreHook(aws_conn_id=self.aws_conn_id)

    @property
    def store(self) -> ObjectStore:
        return self.hook.store


class PipelineOperator(ObjectStoreOperator):
    """An operator of one pipeline.

    :param spec_path: the pipeline's spec file, read when the task runs.
    :param spec_sha256: the version of that file the DAG was planned from (the generated DAGs
        pass it); a file changed since fails the task, so one run never mixes two versions.
        Empty: whatever the file holds when the task runs; the records name its version.
    """

    def __init__(self, *, spec_path: str, spec_sha256: str | None = None, **kwargs: Any) -> None:
        from loopline.airflow.callbacks import with_task_callbacks

        # Every try's cost is recorded, and a failed one leaves a debug bundle, in a
        # hand-written DAG too.
        with_task_callbacks(kwargs, spec_path, kwargs.get("aws_conn_id", "aws_default"))
        super().__init__(**kwargs)
        self.spec_path, self.spec_sha256 = spec_path, spec_sha256

    def pre_execute(self, context: Context) -> None:
        """Hold the run to one version of the spec: Airflow parses the DAG file again for
        each task, so the planned sha256 is this task's parse; the run's first task pins
        its version on S3 and a later task that reads another one fails here. First, the
        pipeline, stage and run go on every line of the task's log (its callback binds them
        too, after this)."""
        from loopline.airflow.callbacks import bind_log_context

        bind_log_context(self, context["run_id"], self.spec_path)
        pin_run_spec(self.store, self.spec, self._spec_version[1], context)

    @property
    def spec(self) -> PipelineSpec:
        return self._spec_version[0]

    @cached_property
    def _spec_version(self) -> tuple[PipelineSpec, str]:
        """The spec and the sha256 of the bytes it was parsed from, read once per task."""
        from loopline.spec.loader import SpecChangedError, load_spec_version

        try:
            return load_spec_version(self.spec_path, expect_sha256=self.spec_sha256)
        except SpecChangedError as exc:  # a retry would meet the same file
            raise AirflowFailException(str(exc)) from exc

    @cached_property
    def registry(self) -> ModelRegistry:
        from loopline.registry import ModelRegistry

        return ModelRegistry(self.store, self.spec.data.bucket)

    @cached_property
    def records(self) -> RecordStore:
        from loopline.records import RecordStore

        return RecordStore(self.store, self.spec.data.bucket)

    def run_context(self, context: Context) -> RunContext:
        """Who runs: this pipeline, run, DAG, task, try and spec version, for records."""
        from loopline.records import RunContext

        return RunContext(
            pipeline=self.spec.name,
            run_id=context["run_id"],
            dag_id=context["dag"].dag_id,
            task_id=self.task_id,
            try_number=context["ti"].try_number,
            spec_sha256=self._spec_version[1],
        )


def pin_run_spec(store: ObjectStore, spec: PipelineSpec, sha256: str, context: Context) -> None:
    """`loopline.records.debug.pin_spec` for this task's run; a conflict fails the task
    without retries (a retry would meet the same file)."""
    from loopline.records.debug import SpecPinConflict, pin_spec, spec_version

    try:
        pin_spec(
            store,
            spec.data.bucket,
            spec.name,
            context["dag"].dag_id,
            context["run_id"],
            spec_version(sha256, spec),
        )
    except SpecPinConflict as exc:
        raise AirflowFailException(str(exc)) from exc


def announce(context: Context, outlets: Iterable[Any], extra: Mapping[str, Any]) -> None:
    """Put `extra` on every asset event the task emits (its outlets)."""
    for outlet in outlets:
        context["outlet_events"][outlet].extra = dict(extra)
