"""Task callbacks: what every try of a Loopline task costs, and a debug bundle when it fails.

`task_callbacks` gives every task of the generated DAGs (and any `PipelineOperator` in a
hand-written DAG) three kinds of callback:

- `BindLogContext`: at the start of each try, puts the pipeline, the stage (the task's kind)
  and the run on every later line of the task's log (``loopline.airflow.log_context``);
- `RecordTaskCost`: measures the try (``loopline.records.cost.Usage``, from its start to its
  end) and writes a ``cost`` record, whatever the try's outcome;
- `DebugBundleOnFailure`: reads what a failed try leaves in its context (the error, the
  task's rendered arguments, the run) and hands it to ``loopline.records.debug``.

Neither raises: a record that cannot be written is logged below the task's own outcome,
which stays what it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow.sdk import Context

    from loopline.records.cost import Usage
    from loopline.records.debug import DebugBundle, SpecVersion
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

log = logging.getLogger(__name__)

# Arguments never copied into a bundle: spark-submit's environment carries the S3 keys.
SECRET_ARGUMENTS = frozenset({"env_vars", "conf", "properties_file", "keytab", "principal"})


@dataclass(frozen=True)
class DebugBundleOnFailure:
    """Write the failed try's bundle under ``debug/<pipeline>/<run>/`` and a ``failure``
    record pointing to it. `state`: ``failed`` (the on_failure callback) or ``up_for_retry``."""

    spec_path: str
    aws_conn_id: str = "aws_default"
    state: Literal["failed", "up_for_retry"] = "failed"

    def __call__(self, context: Context) -> None:
        try:
            uri, pipeline = self.write(context)
        except Exception:  # the task's own error is the one that matters: never mask it
            log.exception("no debug bundle was written for this failure (see the error above)")
            return
        log.error(
            "debug bundle: %s; print it with: loopline debug %s %r",
            uri,
            pipeline,
            context["run_id"],
        )

    def write(self, context: Context) -> tuple[str, str]:
        """The bundle's URI and the pipeline's name."""
        from loopline.airflow.hooks import ObjectStoreHook
        from loopline.records.debug import record_failure
        from loopline.spec.loader import load_spec_version

        spec, on_disk = load_spec_version(self.spec_path)  # no expectation: say what is there
        store = ObjectStoreHook(aws_conn_id=self.aws_conn_id).store
        bundle = self.bundle(context, spec, on_disk, store)
        return record_failure(store, spec.data.bucket, bundle), spec.name

    def bundle(
        self, context: Context, spec: PipelineSpec, on_disk: str, store: ObjectStore
    ) -> DebugBundle:
        from loopline.records.debug import (
            DebugBundle,
            bounded,
            error_info,
            evidence,
            pinned_spec,
            spec_version,
        )
        from loopline.records.lineage import code_version

        ti, error = context["ti"], context.get("exception")
        if not isinstance(error, BaseException):  # a failure with no exception (a timeout)
            error = RuntimeError(str(error or "the task failed without an exception"))
        dag_id, run_id = ti.dag_id, context["run_id"]
        pinned = pinned_spec(store, spec.data.bucket, spec.name, dag_id, run_id)
        arguments = bounded(_arguments(context))
        sample = bounded(evidence(error))
        return DebugBundle(
            pipeline=spec.name,
            run_id=run_id,
            dag_id=dag_id,
            task_id=ti.task_id,
            try_number=ti.try_number,
            map_index=_map_index(ti),
            state=self.state,
            code_version=code_version(),
            spec_path=self.spec_path,
            spec=pinned or spec_version(on_disk, spec),
            spec_note=_spec_note(pinned, on_disk),
            model_version=_model_version(arguments, sample),
            error=error_info(error),
            arguments=arguments,
            sample=sample,
            log=_log_location(ti),
        )


@dataclass(frozen=True)
class BindLogContext:
    """At the start of a try: pipeline, stage and run on every later line of its log."""

    spec_path: str

    def __call__(self, context: Context) -> None:
        try:
            bind_log_context(context["task"], context["run_id"], self.spec_path)
        except Exception:  # the lines lose their keys; the task goes on
            log.exception("pipeline, stage and run are not on this task's log lines")


def bind_log_context(task: Any, run_id: str, spec_path: str) -> None:
    """Bind the task's pipeline (its spec's name), stage and run (`log_context.bind_task`)."""
    from loopline.airflow.log_context import bind_task
    from loopline.spec.loader import load_spec_version

    spec = getattr(task, "spec", None)  # a PipelineOperator has read it already
    name = spec.name if spec is not None else load_spec_version(spec_path)[0].name
    bind_task(name, stage_of(task), run_id)


def stage_of(task: Any) -> str:
    """The task's Loopline stage: the kind of task the plans name its operator by
    (``validate_files``, ``train_model``...), else its operator's class name."""
    from loopline.airflow.factory import OPERATORS

    kinds = {operator: kind for kind, operator in OPERATORS.items()}
    for cls in type(task).__mro__:  # a subclass of a Loopline operator is of its kind
        if cls in kinds:
            return str(kinds[cls].value)
    return str(task.task_type)


_STARTED: dict[str, Usage] = {}  # each try's usage at its start, by `_try_key`


@dataclass(frozen=True)
class RecordTaskCost:
    """At ``start`` note the try's usage; at its end (``success``, ``failed``,
    ``up_for_retry``) write a ``cost`` record of what it used since."""

    spec_path: str
    aws_conn_id: str = "aws_default"
    event: Literal["start", "success", "failed", "up_for_retry"] = "start"

    def __call__(self, context: Context) -> None:
        from loopline.records.cost import Usage

        if self.event == "start":
            _STARTED[_try_key(context)] = Usage.now()
            return
        try:
            self.write(context)
        except Exception:  # the try's outcome stands; its cost is only missing
            log.exception("no cost record was written for this try")

    def write(self, context: Context) -> None:
        from loopline.airflow.hooks import ObjectStoreHook
        from loopline.records import RecordStore, RunContext
        from loopline.records.cost import Usage, record_task_cost
        from loopline.spec.loader import load_spec_version

        end = Usage.now()
        start = _STARTED.pop(_try_key(context), None)
        used = end.since(start or Usage(0.0, 0.0, 0.0, 0, 0, 0.0))
        if start is None:  # a deferred task resumed in a new process: its wall time is Airflow's
            used["wall_seconds"] = _seconds_since_start(context["ti"])
        spec, sha256 = load_spec_version(self.spec_path)
        ti = context["ti"]
        run = RunContext(spec.name, context["run_id"], ti.dag_id, ti.task_id, ti.try_number, sha256)
        store = ObjectStoreHook(aws_conn_id=self.aws_conn_id).store
        record_task_cost(
            RecordStore(store, spec.data.bucket),
            run,
            self.event,
            used,
            map_index=_map_index(ti),
            measured_from="the try's start" if start else "its process's start",
        )


def task_callbacks(spec_path: str, aws_conn_id: str = "aws_default") -> dict[str, Any]:
    """The callback arguments of a Loopline task: its cost measured and recorded, and a
    debug bundle for a failed try. For ``BaseOperator(**task_callbacks(...))``."""

    def cost(event: Literal["start", "success", "failed", "up_for_retry"]) -> RecordTaskCost:
        return RecordTaskCost(spec_path, aws_conn_id, event)

    def bundle(state: Literal["failed", "up_for_retry"]) -> DebugBundleOnFailure:
        return DebugBundleOnFailure(spec_path, aws_conn_id, state)

    return {
        "on_execute_callback": [BindLogContext(spec_path), cost("start")],
        "on_success_callback": [cost("success")],
        "on_failure_callback": [cost("failed"), bundle("failed")],
        "on_retry_callback": [cost("up_for_retry"), bundle("up_for_retry")],
    }


def with_task_callbacks(kwargs: dict[str, Any], spec_path: str, aws_conn_id: str) -> None:
    """Add `task_callbacks` to an operator's `kwargs`, after any given, once."""
    for kind, callbacks in task_callbacks(spec_path, aws_conn_id).items():
        given = kwargs.get(kind)
        listed = [] if given is None else list(given) if isinstance(given, list) else [given]
        ours = (BindLogContext, RecordTaskCost, DebugBundleOnFailure)
        if not any(isinstance(callback, ours) for callback in listed):
            kwargs[kind] = [*listed, *callbacks]


def _try_key(context: Context) -> str:
    ti = context["ti"]
    return f"{ti.dag_id}/{context['run_id']}/{ti.task_id}/{ti.map_index}/{ti.try_number}"


def _seconds_since_start(ti: Any) -> float:
    from datetime import UTC, datetime

    started = getattr(ti, "start_date", None)
    return round((datetime.now(UTC) - started).total_seconds(), 3) if started else 0.0


def _arguments(context: Context) -> dict[str, Any]:
    """The task's templated arguments as rendered for this try, and the run's conf."""
    task = context["task"]
    rendered = {
        name: getattr(task, name, None)
        for name in getattr(task, "template_fields", ())
        if name not in SECRET_ARGUMENTS
    }
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    return {**rendered, "params": dict(context.get("params") or {}), "run_conf": dict(conf)}


def _model_version(arguments: dict[str, Any], sample: dict[str, Any]) -> str | None:
    for source in (sample, arguments):
        for name in ("model_version", "version", "candidate"):
            value = source.get(name)
            if value not in (None, ""):
                return str(value)
    return None


def _spec_note(pinned: SpecVersion | None, on_disk: str) -> str:
    if pinned is None:
        return "no spec pinned for this run (it failed before a task read the spec): as on disk"
    if pinned.sha256 != on_disk:
        return f"the file has changed since the run pinned it (now {on_disk[:12]})"
    return "as the run pinned it; the file is unchanged"


def _map_index(ti: Any) -> int | None:
    index = getattr(ti, "map_index", None)
    return index if isinstance(index, int) and index >= 0 else None


def _log_location(ti: Any) -> Any:
    from loopline.records.debug import LogLocation

    api_path = (
        f"/api/v2/dags/{ti.dag_id}/dagRuns/{quote(ti.run_id, safe='')}/taskInstances/"
        f"{ti.task_id}/logs/{ti.try_number}"
        + (f"?map_index={ti.map_index}" if _map_index(ti) is not None else "")
    )
    return LogLocation(ui_url=getattr(ti, "log_url", None), api_path=api_path, file=_log_file(ti))


def _log_file(ti: Any) -> str | None:
    """The worker's log file, where the default file name template is in use."""
    from airflow.configuration import conf

    folder = conf.get("logging", "base_log_folder", fallback=None)
    if not folder:
        return None
    mapped = f"map_index={ti.map_index}/" if _map_index(ti) is not None else ""
    return (
        f"{folder}/dag_id={ti.dag_id}/run_id={ti.run_id}/task_id={ti.task_id}/"
        f"{mapped}attempt={ti.try_number}.log"
    )


__all__ = [
    "BindLogContext",
    "DebugBundleOnFailure",
    "RecordTaskCost",
    "bind_log_context",
    "stage_of",
    "task_callbacks",
    "with_task_callbacks",
]
