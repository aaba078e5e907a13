"""Every check of `loopline doctor`, in the order it prints them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from loopline.doctor.accelerators import check_tensorflow
from loopline.doctor.java import check_java
from loopline.doctor.packages import check_environment
from loopline.doctor.results import CheckResult, Status, problem, skipped
from loopline.doctor.services import (
    check_airflow,
    check_kafka,
    check_s3,
    check_spark_master,
    s3_client,
)
from loopline.doctor.specs import (
    bucket_probe,
    check_bucket,
    check_champion,
    check_suite,
    check_topics,
    load_specs,
)
from loopline.doctor.targets import DoctorTargets

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from loopline.spec.sections import PipelineSpec


def run_checks(
    targets: DoctorTargets, environ: Mapping[str, str] | None = None
) -> Iterator[CheckResult]:
    """Each finding as soon as it is known (TensorFlow's import takes seconds)."""
    environ = os.environ if environ is None else environ
    yield from check_environment(targets.lock_file)
    yield check_java(environ, targets.timeout)
    yield from check_tensorflow(environ, targets.tensorflow_timeout)
    yield from check_services_and_specs(targets)


def check_services_and_specs(targets: DoctorTargets) -> Iterator[CheckResult]:
    """The services, then what the specs name on them (the unit of the component tests)."""
    client = s3_client(targets)
    s3 = check_s3(targets, client)
    yield s3
    kafka, topics = check_kafka(targets)
    yield kafka
    yield check_airflow(targets)
    yield check_spark_master(targets)
    yield from check_specs(targets, client if s3.status is Status.OK else None, topics)


def check_specs(
    targets: DoctorTargets, client: BaseClient | None, topics: set[str] | None
) -> Iterator[CheckResult]:
    """Per spec: its suite, bucket, topics and champion. `client`: None when S3 failed its
    own check (the S3 findings are then skipped, pointing at it)."""
    specs, unloadable = load_specs(targets.pipelines)
    yield from unloadable
    if not specs and not unloadable:
        yield problem(
            "specs",
            f"no pipeline spec in {targets.pipelines}",
            "add include/pipelines/<name>.yaml, or point LOOPLINE_PIPELINES_DIR at your specs",
        )
    exists = bucket_probe(client) if client is not None else None
    for spec in specs:
        yield check_suite(spec, targets.suite_file(spec))
        if exists is None:
            yield skipped(f"{spec.name} bucket", "S3 failed its check; see the s3 check")
            bucket_found: bool | None = None
        else:
            found = exists(spec.data.bucket)
            bucket_found = found[0]
            yield check_bucket(spec, found, targets.s3_is_local)
        if (topic_check := check_topics(spec, topics)) is not None:
            yield topic_check
        yield _champion(spec, client, bucket_found)


def _champion(
    spec: PipelineSpec, client: BaseClient | None, bucket_found: bool | None
) -> CheckResult:
    name = f"{spec.name} champion"
    if client is None or not bucket_found:
        return skipped(name, "its bucket cannot be read; see the s3 and bucket checks")
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline.registry import CHAMPION, ModelRegistry, RegistryError
    from loopline.storage.objects import ObjectStore

    try:
        champion = ModelRegistry(ObjectStore(client), spec.data.bucket).alias(spec.name, CHAMPION)
    except (BotoCoreError, ClientError, RegistryError) as exc:
        return problem(
            name,
            f"cannot read the registry in s3://{spec.data.bucket}: {exc}",
            f"loopline models list {spec.name} shows what is there",
        )
    return check_champion(spec, champion)
