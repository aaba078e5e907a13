"""What each Loopline task read and wrote, as OpenLineage datasets: the one place that names them.

Airflow's OpenLineage provider asks an operator for its datasets when its task starts, completes
and fails (``get_openlineage_facets_on_start/complete/failure``, found by name). Loopline's
operators get those methods from `ReportsLineage`, and each says what it touched with one
method, `lineage`, from what it already knows: its arguments, and the outcome of its try (what
``execute`` returned, or the record it wrote). Nothing here reads S3 or Kafka again.

Names follow OpenLineage's naming spec, so the same object has one name whoever reports it
(Airflow's own S3 operators and hooks name objects alike):

- an S3 object or prefix: namespace ``s3://<bucket>``, name its key (a prefix without its
  trailing slash), e.g. ``s3://loopline`` + ``card_fraud/validated/dt=2026-11-23/a.parquet``;
- a model version: the registry's folder of it, ``models/<pipeline>/versions/000007``; an
  alias (champion, challenger): ``models/<pipeline>/aliases/champion``;
- a Kafka topic: namespace ``kafka://<host:port>`` (the first bootstrap server), name the topic.

The provider is silent without a transport (``[openlineage] transport``): then none of this
runs. When it runs, a lineage problem never fails a task: the provider calls these methods
after the task's work and outside its outcome, and `ReportsLineage` logs and reports nothing
rather than raise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loopline.registry.layout import alias_prefix, snapshot_table_key, version_prefix

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class DatasetName:
    """An OpenLineage dataset's identity: its namespace and its name within it."""

    namespace: str
    name: str


@dataclass(frozen=True)
class TaskLineage:
    """What one task read (inputs) and wrote (outputs); each dataset once, in order."""

    inputs: tuple[DatasetName, ...] = ()
    outputs: tuple[DatasetName, ...] = ()

    @classmethod
    def of(
        cls, inputs: Iterable[DatasetName] = (), outputs: Iterable[DatasetName] = ()
    ) -> TaskLineage:
        return cls(_unique(inputs), _unique(outputs))

    def __add__(self, other: TaskLineage) -> TaskLineage:
        return TaskLineage.of((*self.inputs, *other.inputs), (*self.outputs, *other.outputs))


NOTHING = TaskLineage()


def s3_object(bucket: str, key: str) -> DatasetName:
    """An S3 object, or a prefix (its trailing slash dropped)."""
    if not bucket or "/" in bucket:
        raise ValueError(f"not an S3 bucket name: {bucket!r} (key {key!r})")
    name = key.strip("/")
    if not name:
        raise ValueError(f"s3://{bucket}: an empty key names no dataset")
    return DatasetName(f"s3://{bucket}", name)


def s3_uri(uri: str) -> DatasetName:
    """``s3://bucket/key`` (``s3a://`` too, as Spark writes it) as a dataset."""
    parts = urlsplit(uri)
    if parts.scheme not in ("s3", "s3a") or not parts.netloc:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return s3_object(parts.netloc, parts.path)


def model_version(bucket: str, pipeline: str, version: int) -> DatasetName:
    """A registered version of a pipeline's model: the registry's folder of it."""
    return s3_object(bucket, version_prefix(pipeline, version))


def model_alias(bucket: str, pipeline: str, alias: str) -> DatasetName:
    """Where a pipeline's alias (champion, challenger) points: its log of moves."""
    return s3_object(bucket, alias_prefix(pipeline, alias))


def snapshot_table(bucket: str, pipeline: str, run_id: str, table: str) -> DatasetName:
    """A training run's snapshot table: ``train`` or ``holdout``."""
    if table not in ("train", "holdout"):
        raise ValueError(f"no snapshot table {table!r}: train or holdout")
    return s3_object(bucket, snapshot_table_key(pipeline, run_id, table))  # type: ignore[arg-type]


def kafka_topic(bootstrap: str, topic: str) -> DatasetName:
    """A Kafka topic, named by the first of the cluster's bootstrap servers."""
    first = bootstrap.split(",")[0].strip()
    server = first.split("://", 1)[-1]  # "PLAINTEXT://host:port" and "host:port" alike
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit() or not topic:
        raise ValueError(
            f"topic {topic!r} on bootstrap servers {bootstrap!r}: expected host:port[,...] "
            "and a topic name"
        )
    return DatasetName(f"kafka://{host}:{port}", topic)


def of_record(record: Any) -> TaskLineage:
    """A stage record's inputs and outputs (``loopline.records.StageRecord``): every record
    names what its stage read and wrote as ``s3://`` URIs."""
    return TaskLineage.of(
        (s3_uri(ref.uri) for ref in record.inputs), (s3_uri(ref.uri) for ref in record.outputs)
    )


def routed_files(bucket: str, results: Iterable[dict[str, Any]]) -> TaskLineage:
    """The validation gate's results (``GateResult.to_dict()``): each landed file read, and
    where it went: validated rows, the archived original, the quarantined file, its report."""
    results = list(results)
    places = ("destination", "archive_key", "quarantine_key", "report_key")
    return TaskLineage.of(
        (s3_object(bucket, r["source"]) for r in results),
        (s3_object(bucket, r[place]) for r in results for place in places if r.get(place)),
    )


def consumers(bootstrap: str, streaming: Any, models: Iterable[DatasetName] = ()) -> TaskLineage:
    """A pipeline's streaming consumers (``spec.streaming``): the input topic and the model
    versions they score with (`models`), the predictions and dead-letter topics they write."""
    return TaskLineage.of(
        [kafka_topic(bootstrap, streaming.input_topic), *models],
        [
            kafka_topic(bootstrap, streaming.output_topic),
            kafka_topic(bootstrap, streaming.dead_letters),
        ],
    )


def to_operator_lineage(lineage: TaskLineage) -> OperatorLineage:
    """As the OpenLineage provider takes it."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(names: tuple[DatasetName, ...]) -> list[Dataset]:
        return [Dataset(namespace=d.namespace, name=d.name) for d in names]

    return OperatorLineage(inputs=datasets(lineage.inputs), outputs=datasets(lineage.outputs))


class ReportsLineage:
    """The OpenLineage methods of a Loopline operator: a subclass says what it read and wrote
    in `lineage`; this mixin (first among the bases) hands it to the provider.

    The outcome `lineage` gets is what the try's ``execute`` returned (kept by a
    ``post_execute`` hook), or what the operator kept with `keep_outcome` when its return
    value does not name its objects (a record, kept before returning or failing).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["post_execute"] = _KeepResult(kwargs.get("post_execute"))
        super().__init__(**kwargs)
        self._lineage_outcome: Any = None

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """What this try read and wrote. `outcome` is None before the work (at start) and
        after a failure before anything was kept; `run_id` is None at start."""
        return NOTHING

    def keep_outcome(self, outcome: Any) -> None:
        """Keep what names this try's objects, for its lineage at the end."""
        self._lineage_outcome = outcome

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        return self._report(None, None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self._report(task_instance.run_id, self._lineage_outcome)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self._report(task_instance.run_id, self._lineage_outcome)

    def _report(self, run_id: str | None, outcome: Any) -> OperatorLineage:
        try:
            lineage = self.lineage(run_id, outcome)
        except Exception:  # lineage is a report on the work, never a reason to fail it
            log.warning("no OpenLineage datasets for this task", exc_info=True)
            lineage = NOTHING
        return to_operator_lineage(lineage)


@dataclass(frozen=True)
class _KeepResult:
    """A ``post_execute`` hook (Airflow passes it the context and the result, where the
    ``post_execute`` method gets the context only): keep the result as the task's outcome,
    unless the operator kept one itself; then call the hook the DAG gave, if any."""

    given: Any = None

    def __call__(self, context: Any, result: Any = None) -> None:
        task = context["task"]
        if isinstance(task, ReportsLineage) and task._lineage_outcome is None:
            task._lineage_outcome = result
        if self.given is not None:
            self.given(context, result)


def _unique(datasets: Iterable[DatasetName]) -> tuple[DatasetName, ...]:
    return tuple(dict.fromkeys(datasets))


__all__ = [
    "NOTHING",
    "DatasetName",
    "ReportsLineage",
    "TaskLineage",
    "consumers",
    "kafka_topic",
    "model_alias",
    "model_version",
    "of_record",
    "routed_files",
    "s3_object",
    "s3_uri",
    "snapshot_table",
    "to_operator_lineage",
]
