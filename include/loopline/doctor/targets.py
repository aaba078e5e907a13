"""What the doctor checks against: where S3, the broker, Airflow and Spark are, and with which
credentials. Built by the CLI from the same places the other commands read (the local stack's
stack.json, AWS's default chain, --bootstrap), so the checks themselves take plain values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loopline.spec.sections import PipelineSpec
from loopline.storage.settings import S3Settings


@dataclass(frozen=True)
class AirflowTarget:
    url: str
    username: str | None = None  # None: only reachability and health are checked
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DoctorTargets:
    project: Path
    pipelines: Path
    # Where a spec's suite is (ProjectPaths.suite_file: the plan's rule, handed down by the
    # caller, as the plan sits above this package)
    suite_file: Callable[[PipelineSpec], Path]
    s3: S3Settings
    s3_source: str  # where the S3 settings came from, for the messages
    # The local stack's log folder where one was started here: `make run` then fixes a
    # service that is down, and the service's log there says why it stopped.
    stack_logs: Path | None
    s3_is_local: bool  # the S3 is the local stack's (not LOOPLINE_S3_MODE=aws)
    kafka_bootstrap: str | None = None  # None: no broker known
    kafka_source: str = ""
    kafka_is_local: bool = False  # the local stack's broker (not --bootstrap or the variable)
    airflow: AirflowTarget | None = None
    spark_master: str | None = None  # as the spark_default connection builds it
    spark_source: str = ""
    timeout: float = 5.0  # per network call
    tensorflow_timeout: float = 120.0  # a cold import of TensorFlow takes seconds

    @property
    def lock_file(self) -> Path:
        return self.project / "requirements.lock"

    @property
    def local_stack(self) -> bool:
        return self.stack_logs is not None

    def stack_fix(self, log: str, start: str = "make run (starts the local stack") -> str:
        """Restart the local stack; `log` (a service's log file, without .log) says why."""
        return f"{start}; {self.stack_logs}/{log}.log says why it stopped)"
