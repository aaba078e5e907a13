"""What the specs name: each spec loads, its expectation suite file exists, its bucket
exists, its topics exist (specs with a streaming section), and its registry has a champion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.doctor.results import CheckResult, ok, problem, skipped
from loopline.doctor.services import s3_error_code
from loopline.spec.loader import SpecError, load_spec, spec_files
from loopline.spec.sections import PipelineSpec

if TYPE_CHECKING:
    from botocore.client import BaseClient

# Asked once per bucket: whether it exists (None: could not tell, with why).
BucketProbe = Callable[[str], tuple[bool | None, str]]


def load_specs(pipelines: Path) -> tuple[list[PipelineSpec], list[CheckResult]]:
    """The specs that load, and a problem for each that does not."""
    specs, problems = [], []
    for path in spec_files(pipelines):
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            problems.append(
                problem(
                    f"spec {path.stem}",
                    f"{path} does not load: {str(exc).splitlines()[-1].strip()}",
                    f"loopline spec check {path} (every problem with its line), then edit it",
                )
            )
    return specs, problems


def check_suite(spec: PipelineSpec, suite: Path) -> CheckResult:
    name = f"{spec.name} suite"
    if suite.is_file():
        return ok(name, f"{spec.data.expectation_suite} at {suite}")
    return problem(
        name,
        f"data.expectation_suite {spec.data.expectation_suite!r} has no file: {suite} is missing",
        f"loopline suite profile {spec.name} <a trusted .parquet/.csv file> (writes {suite}), "
        "or fix data.expectation_suite",
    )


def bucket_probe(client: BaseClient) -> BucketProbe:
    from botocore.exceptions import BotoCoreError, ClientError

    def exists(bucket: str) -> tuple[bool | None, str]:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = s3_error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                return False, "missing"
            return None, f"HEAD answered {code}"
        except BotoCoreError as exc:
            return None, str(exc)
        return True, "exists"

    return exists


def check_bucket(spec: PipelineSpec, exists: tuple[bool | None, str], local: bool) -> CheckResult:
    bucket, name = spec.data.bucket, f"{spec.name} bucket"
    found, why = exists
    if found is None:
        return skipped(name, f"s3://{bucket}: cannot tell ({why}); see the s3 check")
    if not found:
        create = "make run (the stack creates the buckets the specs name)" if local else ""
        return problem(
            name,
            f"data.bucket s3://{bucket} does not exist",
            create or f"aws s3 mb s3://{bucket} (or fix data.bucket)",
        )
    return ok(name, f"s3://{bucket} exists")


def spec_topics(spec: PipelineSpec) -> list[str]:
    streaming = spec.streaming
    if streaming is None:
        return []
    return [streaming.input_topic, streaming.output_topic, streaming.dead_letters]


def check_topics(spec: PipelineSpec, topics: set[str] | None) -> CheckResult | None:
    """None for a spec without streaming (nothing to check)."""
    wanted, name = spec_topics(spec), f"{spec.name} topics"
    if not wanted:
        return None
    if topics is None:
        return skipped(name, "no broker answered; see the kafka check")
    missing = [topic for topic in wanted if topic not in topics]
    if missing:
        return problem(
            name,
            f"missing on the broker: {', '.join(missing)} (of {', '.join(wanted)})",
            f"trigger {spec.name}.stream_deploy (it creates them), or make run locally",
        )
    return ok(name, ", ".join(wanted))


def check_champion(spec: PipelineSpec, champion: int | None) -> CheckResult:
    name = f"{spec.name} champion"
    if champion is None:
        return problem(
            name,
            f"no champion in s3://{spec.data.bucket}/models/{spec.name}/ (nothing scores yet)",
            f"trigger {spec.name}.train (Airflow UI or REST; it promotes a first model)",
        )
    return ok(name, f"version {champion}")
