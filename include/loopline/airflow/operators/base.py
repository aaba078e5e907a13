"""Base operators: the object store and the spec, each built once per task."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from loopline.airflow.hooks import ObjectStoreHook


class ObjectStoreOperator(BaseOperator):
    """An operator that reads or writes S3 through ``aws_conn_id``."""

    def __init__(self, *, aws_conn_id: str = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> ObjectStoreHook:
        return ObjectStoreHook(aws_conn_id=self.aws_conn_id)

    @property
    def store(self) -> Any:
        return self.hook.store


class SpecOperator(ObjectStoreOperator):
    """An operator of one pipeline: its spec, read when the task runs."""

    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path

    @cached_property
    def spec(self) -> Any:
        from loopline.spec import load_spec

        return load_spec(self.spec_path)

    def run_context(self, context: Context) -> Any:
        """Who runs: this pipeline, run, DAG, task and try, for records and lineage."""
        from loopline.records import RunContext

        return RunContext(
            pipeline=self.spec.name,
            run_id=context["run_id"],
            dag_id=context["dag"].dag_id,
            task_id=self.task_id,
            try_number=context["ti"].try_number,
        )

    def announce(self, context: Context, extra: dict[str, Any]) -> None:
        """Put `extra` on every asset event this task emits."""
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra


class RegistryOperator(SpecOperator):
    """An operator of one pipeline that reads or moves its models."""

    @property
    def registry(self) -> Any:
        from loopline.registry import ModelRegistry

        return ModelRegistry(self.store, self.spec.data.bucket)
