"""Typed pipeline specs: one YAML file per model, parsed into these frozen pydantic models.

Every section is strict (`extra="forbid"`), so a typo is an error with a hint, never a
silently ignored key. Cross-section rules (a feature must be a schema column, the promotion
metric must be a training metric, ...) live in `PipelineSpec`'s validators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from loopline.storage.formats import FileFormat  # the floor's: re-exported for spec readers

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
S3_PREFIX_PATTERN = r"^([A-Za-z0-9!_.*'()-]+/)+$"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
DuplicateKeys = Literal["reject", "drop"]  # what the gate does with keys already validated
PositiveInt = Annotated[int, Field(ge=1)]
Days = Annotated[int, Field(ge=1, le=3650)]  # a data window: at most ten years

# The presets Airflow's cron timetables understand, besides five-field cron expressions.
SCHEDULE_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def _check_schedule(value: str) -> str:
    from croniter import croniter

    if value in SCHEDULE_PRESETS or (len(value.split()) == 5 and croniter.is_valid(value)):
        return value
    raise ValueError(
        f"{value!r} is not a schedule; expected a five-field cron expression such as "
        f"'0 * * * *' or one of {', '.join(SCHEDULE_PRESETS)}"
    )


# A cron expression or preset, checked when the spec loads (not when Airflow parses the DAG).
Schedule = Annotated[str, AfterValidator(_check_schedule)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnType(StrEnum):
    STRING = "string"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


class Column(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ColumnType
    nullable: bool = False
    description: str = ""


class DataSpec(StrictModel):
    """Where batches land and what they must look like."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    landing_prefix: str = Field(pattern=S3_PREFIX_PATTERN)
    validated_prefix: str = Field(pattern=S3_PREFIX_PATTERN)
    quarantine_prefix: str = Field(pattern=S3_PREFIX_PATTERN)
    # Where the gate keeps each passed file's landed bytes, unchanged, once it has written
    # them to the validated zone as Parquet; default: `archive/` beside the landing prefix.
    archive_prefix: str | None = Field(default=None, pattern=S3_PREFIX_PATTERN)
    format: FileFormat = FileFormat.PARQUET
    key: str
    timestamp: str
    columns: list[Column] = Field(min_length=1)
    expectation_suite: str = Field(pattern=NAME_PATTERN)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def archive_root(self) -> str:
        """The archive prefix: the spec's, else `archive/` beside the landing prefix."""
        if self.archive_prefix:
            return self.archive_prefix
        parent = self.landing_prefix.rstrip("/").rpartition("/")[0]
        return f"{parent}/archive/" if parent else "archive/"


class ValidationSpec(StrictModel):
    """How landed batches are gated."""

    # Runs on every landing asset event and on this schedule, to sweep files that landed
    # by other means than Loopline's own feed.
    schedule: Schedule | None = "*/15 * * * *"
    fail_run_on_invalid: bool = True  # False: quarantine and carry on
    max_files_per_run: PositiveInt = 200
    # Files are validated in tasks of up to this many files and about this many MiB (in name
    # order, balanced by bytes), each file still with its own report, routing and record:
    # a task's start-up (a process, imports) costs more than validating a small file.
    files_per_task: Annotated[int, Field(ge=1, le=1000)] = 50
    mib_per_task: Annotated[float, Field(gt=0.0)] = 256.0
    # How long a run with nothing to validate waits, deferred in the triggerer, for a first
    # file. 0 (the default): it ends at once with a note. A waiting run is the DAG's one
    # active run, so later sweeps and landing events queue behind it.
    wait_minutes: Annotated[int, Field(ge=0)] = 0
    poll_seconds: PositiveInt = 30  # while waiting: how often the triggerer lists the prefix
    # Row-level split: rows that break a row-level expectation (not null, in set, between,
    # unique...) go to quarantine and the rest of the file moves on. A file with more bad
    # rows than this share, or one failing a table-level expectation, is quarantined whole.
    row_split: bool = False
    max_rejected_row_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    # A batch with keys already validated (a replayed batch: an upstream retry): "reject"
    # quarantines it whole, with the keys in its report; "drop" validates only its new rows
    # and reports how many it dropped. Never both copies in the validated zone.
    duplicate_keys: DuplicateKeys = "reject"
    # What one landed file may cost to read. Landed bytes are untrusted, and a file that
    # exhausts the worker's memory kills its task before any error is raised, so it would
    # stay first in landing for ever. A file past any limit is quarantined as "too large",
    # its numbers in its report: its size (from a HEAD, so it is never downloaded), what it
    # decompresses to (capped as it streams out), and what its Parquet footer states.
    max_file_mib: Annotated[float, Field(gt=0.0)] = 512.0
    max_decoded_mib: Annotated[float, Field(gt=0.0)] = 1024.0  # decompressed or uncompressed
    # Decompressed over compressed bytes; checked once the output passes 16 MiB.
    max_compression_ratio: Annotated[float, Field(ge=1.0)] = 100.0
    max_rows: PositiveInt = 10_000_000  # as a Parquet footer states them, before decoding


class Features(StrictModel):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class Architecture(StrictModel):
    kind: Literal["mlp"] = "mlp"
    hidden_units: list[PositiveInt] = Field(default=[64, 32], min_length=1)
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    embedding_dim: PositiveInt = 8


class HyperParameters(StrictModel):
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    batch_size: PositiveInt = 1024
    epochs: Annotated[int, Field(ge=1, le=1000)] = 20


class Metric(StrEnum):
    AUC = "auc"
    LOGLOSS = "logloss"
    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"


LOWER_IS_BETTER = frozenset({Metric.LOGLOSS.value})  # the others: higher is better


class ModelSpec(StrictModel):
    task: Literal["binary_classification"] = "binary_classification"
    features: Features
    label: str
    architecture: Architecture = Architecture()
    hyperparameters: HyperParameters = HyperParameters()


class TrainingSpec(StrictModel):
    schedule: Schedule | None = "@weekly"
    window_days: Days = 30
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    seed: int = 42
    early_stopping_patience: PositiveInt = 3
    metrics: list[Metric] = Field(default=[Metric.AUC, Metric.LOGLOSS], min_length=1)
    use_gpu_if_available: bool = True


class BatchInferenceSpec(StrictModel):
    schedule: Schedule | None = "@daily"
    output_prefix: str = Field(pattern=S3_PREFIX_PATTERN)
    rows_per_batch: PositiveInt = 65_536


class ShadowSpec(StrictModel):
    """The challenger judged on live traffic before it is promoted: the replicas also score a
    share of the live events and requests with it (its scores go to the prediction log, never
    to a caller or the output topic), and a shadow verdict compares it with the champion on
    the same events. With this section a candidate that passes the offline gate waits as
    challenger until a shadow verdict passes."""

    share: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # of events and requests, by id
    min_pairs: PositiveInt = 1000  # events both scored, before a verdict is given
    decision_threshold: Fraction = 0.5  # a score at or above it: the positive decision
    min_agreement: Fraction = 0.95  # events on the same side of the threshold
    max_score_shift: Annotated[float, Field(ge=0.0)] = 0.1  # Wasserstein-1 of the two scores
    max_p99_ratio: Annotated[float, Field(gt=0.0)] = 2.0  # challenger's scoring p99 / champion's
    max_error_share: Fraction = 0.0  # events the challenger failed to score


class PromotionSpec(StrictModel):
    metric: Metric = Metric.AUC
    min_improvement: Annotated[float, Field(ge=0.0)] = 0.0
    guard_tolerances: dict[Metric, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    absolute_thresholds: dict[Metric, float] = Field(default_factory=dict)
    max_p99_latency_ms: Annotated[float, Field(gt=0.0)] = 50.0
    max_model_size_mb: Annotated[float, Field(gt=0.0)] = 100.0
    require_approval: bool = False
    # Who may approve (require_approval): Airflow user names (the simple auth manager's user
    # ids; under FAB, Loopline's auth manager matches names too: loopline/airflow/auth.py).
    # Empty: anyone allowed to answer the DAG's HITL tasks.
    approvers: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # Set: a promotion also needs a passing shadow verdict on live traffic (see ShadowSpec).
    shadow: ShadowSpec | None = None

    @model_validator(mode="after")
    def _approvers_need_an_approval_step(self) -> PromotionSpec:
        # Without the step nobody is asked: approvers alone would read as a control that
        # is not there.
        if self.approvers and not self.require_approval:
            raise ValueError(
                "promotion.approvers is set but promotion.require_approval is false: "
                "no one would be asked; set require_approval: true"
            )
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError(f"promotion.approvers lists a user twice: {self.approvers}")
        return self


class DriftSpec(StrictModel):
    """Drift audits: the recent validated data, and the champion's scores and quality on it,
    against what the champion was trained on; crossing a threshold starts retraining."""

    # Runs on this schedule and on every validated and predictions asset event.
    schedule: Schedule | None = "@daily"
    window_days: Days = 1  # the current window: batches validated (dt=) in the last N days
    # "champion": the rows the champion was trained on; "window": the reference_window_days
    # of validated data before the current window.
    reference: Literal["champion", "window"] = "champion"
    reference_window_days: Days = 7
    # Per feature, a distance (Wasserstein normed, Jensen-Shannon) at or above which it has
    # drifted; null: Evidently's default for the test it would choose (0.1).
    feature_threshold: Annotated[float, Field(gt=0.0)] | None = None
    drifted_share_to_retrain: Fraction = 0.3  # share of drifted features that retrains
    key_features: list[str] = Field(default_factory=list)  # any of them drifted retrains
    prediction_threshold: Annotated[float, Field(gt=0.0)] = 0.1  # scores' Wasserstein normed
    # The champion's promotion metric on labelled current rows may fall this far below its
    # holdout value before it retrains (performance decay, not only input drift).
    max_quality_drop: Annotated[float, Field(ge=0.0)] = 0.05
    cooldown_hours: Annotated[float, Field(ge=0.0)] = 24.0  # between two retrains it starts
    # Hysteresis: after an audit retrained, the next retrains only once an audit saw the
    # drifted share fall below this (the drift cleared), or for a new champion.
    rearm_share: Fraction = 0.15


class Replicas(StrictModel):
    min: PositiveInt = 1
    max: PositiveInt = 4


TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


# Kubernetes names and quantities, checked when the spec loads: the API server would refuse
# them only at deploy time, and the namespace goes into the path of the API request. Each
# pattern is valid in JSON Schema (ECMA-262) too, for editors.
DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
CPU_QUANTITY = re.compile(r"^(?:(\d+(?:\.\d{1,3})?)|(\d+)m)$")  # cores, or millicores
MEMORY_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i|[kMGTPE])?$")  # number, unit
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?" + _LABEL_NAME)
LABEL_VALUE = re.compile(f"({_LABEL_NAME})?")
_MEMORY_UNITS = {"": 1} | {u: 1000 ** (i + 1) for i, u in enumerate("kMGTPE")}
_MEMORY_UNITS |= {f"{u}i": 1024 ** (i + 1) for i, u in enumerate("KMGTPE")}


def cpu_cores(quantity: str) -> float:
    """A CPU quantity (checked by _check_cpu) in cores: '500m' is 0.5."""
    match = CPU_QUANTITY.fullmatch(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a CPU quantity")
    cores, millicores = match.groups()
    return float(cores) if cores else int(millicores) / 1000


def memory_bytes(quantity: str) -> float:
    """A memory quantity (checked by _check_memory) in bytes: '2Gi' is 2 * 1024**3."""
    match = MEMORY_QUANTITY.fullmatch(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    number, unit = match.groups()
    return float(number) * _MEMORY_UNITS[unit or ""]


def _check_namespace(value: str) -> str:
    if DNS_LABEL.fullmatch(value):
        return value
    raise ValueError(
        f"{value!r} is not a Kubernetes namespace: expected a DNS-1123 label, at most 63 "
        "lowercase letters, digits and '-', starting and ending with a letter or digit"
    )


def _check_cpu(value: str) -> str:
    if CPU_QUANTITY.fullmatch(value) and cpu_cores(value) > 0:
        return value
    raise ValueError(
        f"{value!r} is not a CPU quantity: expected cores (1, 0.5) or millicores (500m), above 0"
    )


def _check_memory(value: str) -> str:
    if MEMORY_QUANTITY.fullmatch(value) and memory_bytes(value) > 0:
        return value
    raise ValueError(
        f"{value!r} is not a memory quantity: expected bytes with an optional suffix "
        "(512Mi, 2Gi, 2G), above 0"
    )


def _check_image(value: str) -> str:
    if value and not re.search(r"\s", value):
        return value
    raise ValueError(
        f"{value!r} is not an image reference: expected one word with no spaces, such as "
        "registry.example/loopline:1.2, best pinned by digest (...@sha256:<digest>)"
    )


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        if not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(label):
            raise ValueError(f"{key!r}: {label!r} is not a Kubernetes label")
    return value


Namespace = Annotated[
    str, AfterValidator(_check_namespace), Field(json_schema_extra={"pattern": DNS_LABEL.pattern})
]
CpuQuantity = Annotated[
    str, AfterValidator(_check_cpu), Field(json_schema_extra={"pattern": CPU_QUANTITY.pattern})
]
MemoryQuantity = Annotated[
    str,
    AfterValidator(_check_memory),
    Field(json_schema_extra={"pattern": MEMORY_QUANTITY.pattern}),
]
Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
PodId = Annotated[int, Field(ge=1, le=2**31 - 1)]  # never 0: root


class KubernetesTarget(StrictModel):
    """What a StatefulSet of replicas runs; where (the API server and its token) is the
    Airflow connection's. The pods meet the "restricted" Pod Security Standard."""

    # The project's image (its Dockerfile): specs included. Best pinned by digest.
    image: Annotated[str, AfterValidator(_check_image)]
    namespace: Namespace = "loopline"
    # The spec file inside the image; empty: where the project's Dockerfile puts it,
    # /opt/airflow/include/pipelines/<the spec's file name>.
    spec_path: str | None = None
    # The brokers as pods reach them; empty: the Airflow connection kafka_default's.
    bootstrap: str | None = None
    s3_secret: str = "loopline-s3"  # a Secret whose key LOOPLINE_S3 holds the S3 settings
    cpu: CpuQuantity = "1"  # requested per pod
    memory: MemoryQuantity = "2Gi"
    # Limits per pod; empty: the request, so a pod is in the Guaranteed QoS class and is
    # throttled or OOM-killed at what the scheduler reserved for it.
    cpu_limit: CpuQuantity | None = None
    memory_limit: MemoryQuantity | None = None
    # The writable /tmp (the root file system is read-only): the model is downloaded there.
    scratch_size: MemoryQuantity = "1Gi"
    # The image's airflow user; the restricted profile forbids root.
    run_as_user: PodId = 50000
    run_as_group: PodId = 50000
    # Who may scrape the metrics port (streaming.metrics_port), by the labels of its
    # namespace and its pods; nothing else may connect to a replica (its NetworkPolicy).
    scrape_namespace_labels: Labels = {"kubernetes.io/metadata.name": "monitoring"}
    scrape_pod_labels: Labels = {"app.kubernetes.io/name": "prometheus"}

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> KubernetesTarget:
        # The API server refuses a limit below its request, but only when the pods deploy.
        if self.cpu_limit is not None and cpu_cores(self.cpu_limit) < cpu_cores(self.cpu):
            raise ValueError(
                f"cpu_limit {self.cpu_limit!r} is below cpu {self.cpu!r}; "
                "a limit must be at least its request"
            )
        if self.memory_limit is not None and (
            memory_bytes(self.memory_limit) < memory_bytes(self.memory)
        ):
            raise ValueError(
                f"memory_limit {self.memory_limit!r} is below memory {self.memory!r}; "
                "a limit must be at least its request"
            )
        return self


class ServeSpec(StrictModel):
    """Online scoring by the same replicas: the Open Inference Protocol v2 over REST and gRPC
    (KServe's, Triton's and MLServer's clients work unchanged). Every replica listens on the
    same ports (SO_REUSEPORT: the kernel spreads connections over them). Concurrent requests
    are scored in one model call, up to `max_batch_size` rows, waiting at most
    `max_queue_delay_ms` for more once a request is in (Triton's dynamic batching)."""

    # Loopback unless told otherwise: the endpoint has no authentication of its own (a pod
    # binds every interface behind its NetworkPolicy and Service).
    host: str = Field(default="127.0.0.1", min_length=1)
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8000  # Triton's defaults; 0: none
    grpc_port: Annotated[int, Field(ge=0, le=65535)] = 8001
    max_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 64
    max_queue_delay_ms: Annotated[float, Field(ge=0.0, le=1000.0)] = 2.0
    max_request_rows: Annotated[int, Field(ge=1, le=100_000)] = 1024
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    # Auto-scaling on load (Knative's concurrency target): requests in flight per replica the
    # monitor aims for, averaged over the stable window (60 s), with a panic window (6 s).
    target_concurrency: Annotated[float, Field(gt=0.0, le=10_000.0)] = 8.0

    @model_validator(mode="after")
    def _some_port(self) -> ServeSpec:
        if self.http_port == 0 and self.grpc_port == 0:
            raise ValueError("http_port and grpc_port are both 0: the endpoint would serve nothing")
        if self.http_port and self.http_port == self.grpc_port:
            raise ValueError(f"http_port and grpc_port are both {self.http_port}")
        return self


class StreamingSpec(StrictModel):
    """Real-time scoring: consumers of `input_topic` (JSON feature events keyed by event id)
    that score with the champion and produce one prediction per event to `output_topic`."""

    input_topic: TopicName
    output_topic: TopicName
    # Events that cannot be scored (bad JSON, missing or mistyped features...), with the
    # reason; empty: "<input_topic>.dead-letter".
    dead_letter_topic: TopicName | None = None
    consumer_group: str = Field(min_length=1)
    partitions: PositiveInt = 4
    replicas: Replicas = Replicas()
    p99_latency_ms: Annotated[float, Field(gt=0.0)] = 250.0
    max_lag: PositiveInt = 10_000
    # Auto-scaling: replicas = ceil(total lag / lag_per_replica), within replicas.min and
    # min(replicas.max, partitions); a p99 above p99_latency_ms adds replicas too. A pipeline
    # that serves online also scales on its requests in flight (serve.target_concurrency), up
    # to replicas.max even beyond the partitions (those replicas only answer requests).
    lag_per_replica: PositiveInt = 1000
    # Micro-batches: a consumer scores up to this many events at once, waiting at most
    # max_wait_ms for them (one call of the model costs the same for 1 or 256 rows).
    max_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 256
    max_wait_ms: Annotated[int, Field(ge=1, le=10_000)] = 50
    max_event_bytes: Annotated[int, Field(ge=64, le=1_048_576)] = 65_536
    # Group membership: a dead replica's partitions move after the session timeout.
    session_timeout_ms: Annotated[int, Field(ge=1000, le=300_000)] = 6000
    # true: consume-score-produce in Kafka transactions (exactly once for read_committed
    # readers); false: at least once, offsets committed after the predictions are acked.
    exactly_once: bool = False
    # Static group membership (KIP-345): a replica restarted in its slot takes its partitions
    # back without a rebalance. Off by default: against the local broker (Tansu 0.6), two
    # static members rejoining during a roll livelocked the group (each SyncGroup failed on
    # the other's rejoin, for minutes; seen three times). On real Kafka, turn it on.
    static_membership: bool = False
    # Scale-in waits until no decision of this window wanted more replicas (the HPA's 300 s
    # default): a short lull does not shed replicas a surge needs again a minute later.
    scale_in_after_seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 300.0
    # Each replica serves Prometheus metrics on this port (local processes: a free port each,
    # written into its heartbeat, as several share a host); 0: no endpoint.
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464
    # Where the replicas run, chosen once per deployment: local processes (the embedded
    # default) or a Kubernetes StatefulSet (the `kubernetes` section, applied through the
    # Airflow connection `loopline_kubernetes`).
    backend: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesTarget | None = None
    # Durability of the topics Loopline creates: copies of each partition, and how many must
    # have a write before acks=all acknowledges it. Empty: 3 copies, 2 in sync, never more
    # copies than the cluster has brokers (the local broker is one: 1 copy, 1 in sync).
    replication_factor: Annotated[int, Field(ge=1, le=16)] | None = None
    min_insync_replicas: Annotated[int, Field(ge=1, le=16)] | None = None
    # Online scoring over REST and gRPC by the same replicas (empty: Kafka only).
    serve: ServeSpec | None = None
    # Every prediction the replicas make (Kafka, REST, gRPC) is logged to the bucket, where
    # the drift audit reads predictions beside batch scoring's; empty: <name>/prediction-log/.
    log_predictions: bool = True
    prediction_log_prefix: str | None = Field(default=None, pattern=S3_PREFIX_PATTERN)

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_topic or f"{self.input_topic}.dead-letter"

    @model_validator(mode="after")
    def _kubernetes_needs_its_section(self) -> StreamingSpec:
        if self.backend == "kubernetes" and self.kubernetes is None:
            raise ValueError("backend 'kubernetes' needs a `kubernetes` section (image, ...)")
        return self


class DemoSpec(StrictModel):
    """A synthetic feed for the pipeline, for local runs and demos."""

    generator: Literal["card_transactions"] = "card_transactions"
    schedule: Schedule | None = "@hourly"
    rows: Annotated[int, Field(ge=1, le=5_000_000)] = 5_000
    seed: int = 7
    fraud_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05


class PipelineSpec(StrictModel):
    """One model's whole loop, from landing data to streaming scores."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    owner: str = Field(default="loopline", min_length=1)
    tags: list[str] = Field(default_factory=list)
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    data: DataSpec
    validation: ValidationSpec = ValidationSpec()
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    batch_inference: BatchInferenceSpec | None = None
    promotion: PromotionSpec = PromotionSpec()
    drift: DriftSpec = DriftSpec()
    streaming: StreamingSpec | None = None
    demo: DemoSpec | None = None

    @field_validator("tags")
    @classmethod
    def _tags_are_slugs(cls, tags: list[str]) -> list[str]:
        bad = [tag for tag in tags if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", tag)]
        if bad:
            raise ValueError(f"tags {bad} must be 1-100 letters, digits, '_', '.' or '-'")
        return tags

    @model_validator(mode="after")
    def _sections_agree(self) -> PipelineSpec:
        problems = cross_section_problems(self)
        if problems:
            raise SpecProblems(problems)
        return self

    @property
    def all_tags(self) -> list[str]:
        return sorted({"loopline", f"pipeline:{self.name}", *self.tags})


FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (a dotted path into the YAML) and why."""

    path: FieldPath
    message: str

    @property
    def dotted_path(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text.lstrip(".") or "(top level)"


class SpecProblems(Exception):
    """Raised from inside validation so that pydantic does not flatten paths.

    pydantic wraps ValueError into an error located at the model; any other exception passes
    through untouched, so cross-section problems keep their own precise paths.
    """

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.dotted_path}: {p.message}" for p in problems))
        self.problems = problems


# A key names one row: text or a whole number, never a float (1.0 and 1.0000001 would be two
# keys that print alike) nor a time.
KEY_TYPES = (ColumnType.STRING, ColumnType.INT64)
# Where the registry and the record store keep their objects, in every pipeline's bucket.
RESERVED_PREFIXES = ("models/", "records/", "profiles/", "reports/")


def cross_section_problems(spec: PipelineSpec) -> list[Problem]:
    """Rules that span fields or sections, each reported at the field a user should edit."""
    return [
        *_data_problems(spec.data),
        *_model_problems(spec),
        *_promotion_problems(spec),
        *_drift_problems(spec),
        *_streaming_problems(spec.streaming),
        *_shadow_problems(spec),
    ]


def _shadow_problems(spec: PipelineSpec) -> list[Problem]:
    """A shadow is scored by the streaming replicas and compared from their prediction log;
    only local replicas can follow a shadow yet (the shadow DAG would fail every hour)."""
    streaming = spec.streaming
    if spec.promotion.shadow is None:
        return []
    if streaming is None or not streaming.log_predictions:
        why = (
            "needs a streaming section with log_predictions: the challenger is scored by the "
            "replicas on live traffic and compared from their prediction log"
        )
        return [Problem(("promotion", "shadow"), why)]
    if streaming.backend == "kubernetes":
        why = "needs local replicas (streaming.backend: local): Kubernetes ones cannot shadow yet"
        return [Problem(("promotion", "shadow"), why)]
    return []


def _drift_problems(spec: PipelineSpec) -> list[Problem]:
    drift, features = spec.drift, spec.model.features.all
    problems = [
        Problem(
            ("drift", "key_features", index),
            f"{name!r} is not a model feature (model.features: {', '.join(features)})",
        )
        for index, name in enumerate(drift.key_features)
        if name not in features
    ]
    if drift.rearm_share > drift.drifted_share_to_retrain:
        problems.append(
            Problem(
                ("drift", "rearm_share"),
                f"{drift.rearm_share} is above drift.drifted_share_to_retrain "
                f"({drift.drifted_share_to_retrain}): the drift would clear before it retrains",
            )
        )
    return problems


def _data_problems(data: DataSpec) -> list[Problem]:
    problems = []
    prefixes = ("landing_prefix", "validated_prefix", "quarantine_prefix", "archive_prefix")
    zones = {name: getattr(data, name) for name in prefixes[:3]}
    zones["archive_prefix"] = data.archive_root
    for i, outer in enumerate(prefixes):
        for inner in prefixes[i + 1 :]:
            a, b = zones[outer], zones[inner]
            if a.startswith(b) or b.startswith(a):
                problems.append(
                    Problem(
                        ("data", inner),
                        f"{b!r} overlaps data.{outer} {a!r}; landing, validated, quarantine and "
                        "archive prefixes must be disjoint so a file is in exactly one of them",
                    )
                )
    names = data.column_names
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.append(
                Problem(
                    ("data", "columns", index, "name"),
                    f"column {name!r} is declared more than once",
                )
            )
    types = {column.name: column.type for column in data.columns}
    for role, allowed in (("key", KEY_TYPES), ("timestamp", (ColumnType.TIMESTAMP,))):
        name = getattr(data, role)
        if name not in names:
            problems.append(
                Problem(
                    ("data", role), f"{name!r} is not a declared column; expected one of {names}"
                )
            )
        elif types[name] not in allowed:
            problems.append(
                Problem(
                    ("data", role),
                    f"{name!r} is a {types[name]} column; data.{role} must name a "
                    f"{' or '.join(allowed)} column",
                )
            )
    for field in prefixes:
        prefix = zones[field]
        if reserved := next((r for r in RESERVED_PREFIXES if prefix.startswith(r)), None):
            problems.append(
                Problem(
                    ("data", field),
                    f"{prefix!r} is under {reserved!r}, where Loopline keeps its own objects",
                )
            )
    return problems


def _model_problems(spec: PipelineSpec) -> list[Problem]:
    names = spec.data.column_names
    features = spec.model.features
    problems = []
    for group in ("numeric", "categorical"):
        for index, feature in enumerate(getattr(features, group)):
            if feature not in names:
                problems.append(
                    Problem(
                        ("model", "features", group, index),
                        f"{feature!r} is not a column of data.columns",
                    )
                )
    if not features.all:
        problems.append(Problem(("model", "features"), "lists no numeric or categorical feature"))
    if spec.model.label not in names:
        problems.append(
            Problem(("model", "label"), f"{spec.model.label!r} is not a column of data.columns")
        )
    elif spec.model.label in features.all:
        problems.append(
            Problem(("model", "label"), f"{spec.model.label!r} is also listed as a feature")
        )
    return problems


def _promotion_problems(spec: PipelineSpec) -> list[Problem]:
    known = [str(metric) for metric in spec.training.metrics]
    promotion = spec.promotion
    used: list[tuple[FieldPath, Metric]] = [(("promotion", "metric"), promotion.metric)]
    used += [(("promotion", "guard_tolerances", str(m)), m) for m in promotion.guard_tolerances]
    used += [
        (("promotion", "absolute_thresholds", str(m)), m) for m in promotion.absolute_thresholds
    ]
    return [
        Problem(
            path,
            f"{str(metric)!r} is not among training.metrics {known}; "
            "hint: add it there or pick one of those",
        )
        for path, metric in used
        if str(metric) not in known
    ]


def _streaming_problems(streaming: StreamingSpec | None) -> list[Problem]:
    if streaming is None:
        return []
    problems = []
    if streaming.replicas.min > streaming.replicas.max:
        problems.append(
            Problem(
                ("streaming", "replicas", "min"),
                f"{streaming.replicas.min} is greater than replicas.max ({streaming.replicas.max})",
            )
        )
    # A serving pipeline's replicas beyond the partitions answer requests (they hold no
    # partition); a Kafka-only one's would sit idle.
    if streaming.replicas.max > streaming.partitions and streaming.serve is None:
        problems.append(
            Problem(
                ("streaming", "replicas", "max"),
                f"{streaming.replicas.max} exceeds partitions "
                f"({streaming.partitions}); a consumer group cannot use more "
                "replicas than partitions (a pipeline that serves online can: streaming.serve)",
            )
        )
    if streaming.input_topic == streaming.output_topic:
        problems.append(
            Problem(
                ("streaming", "output_topic"),
                "must differ from input_topic, or scores feed back as input",
            )
        )
    return problems
