"""Check pipeline specs all the way to their DAG plans: the one code path that
``loopline spec check`` and the DAG files share, so what checks clean also builds.

A spec fails here when it does not load (every problem with field and line), when it names an
expectation suite that does not exist, or when it cannot be planned into DAGs. A bad spec is
recorded and never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loopline.data.prediction_log import log_prefix
from loopline.plan import ProjectPaths, plan_pipeline
from loopline.plan.vocabulary import DagPlan
from loopline.spec.loader import (
    SPEC_SUFFIXES,
    PipelineSpecsInvalid,
    SpecError,
    load_spec,
    spec_files,
)
from loopline.spec.sections import PipelineSpec, Problem


@dataclass(frozen=True)
class PlannedPipeline:
    spec: PipelineSpec
    path: Path
    dags: tuple[DagPlan, ...]


@dataclass(frozen=True)
class PipelineCheck:
    """The pipelines that checked clean, with their plans, and the errors of the others."""

    pipelines: tuple[PlannedPipeline, ...]
    errors: tuple[SpecError, ...]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise PipelineSpecsInvalid(
                list(self.errors), total=len(self.errors) + len(self.pipelines)
            )


def check_pipelines(folder: Path, files: Iterable[Path] | None = None) -> PipelineCheck:
    """Check every spec of `folder` (or just `files`), each against the project beside it,
    then against each other: one file per pipeline name, no two pipelines on the same data."""
    pipelines, errors = [], []
    for path in files if files is not None else spec_files(folder):
        try:
            pipelines.append(check_pipeline(Path(path)))
        except SpecError as error:
            errors.append(error)
        except Exception as exc:  # a loader bug must not drop every pipeline's DAGs either
            problem = Problem((), f"cannot be checked: {type(exc).__name__}: {exc}")
            errors.append(SpecError(Path(path), [problem], {}))
    kept: list[PlannedPipeline] = []
    for pipeline in sorted(pipelines, key=_precedence):
        problems = [p for other in kept for p in conflicts(pipeline, other)]
        if problems:
            errors.append(SpecError.located(pipeline.path, problems))
        else:
            kept.append(pipeline)
    return PipelineCheck(tuple(kept), tuple(errors))


def _precedence(pipeline: PlannedPipeline) -> tuple[str, int]:
    """Of two files of one pipeline, the one its tasks read (ProjectPaths.spec_file) wins."""
    return pipeline.spec.name, SPEC_SUFFIXES.index(pipeline.path.suffix)


def conflicts(pipeline: PlannedPipeline, other: PlannedPipeline) -> list[Problem]:
    """Why `pipeline` cannot run beside `other`, each at the field to edit."""
    if pipeline.spec.name == other.spec.name:
        message = (
            f"pipeline {pipeline.spec.name!r} is already defined by {other.path}; "
            "each pipeline has one spec file"
        )
        return [Problem(("name",), message)]
    problems = _shared_ports(pipeline, other)
    if pipeline.spec.data.bucket != other.spec.data.bucket:
        return problems
    return problems + [
        Problem(
            field,
            f"{prefix!r} overlaps {'.'.join(other_field)} {other_prefix!r} of pipeline "
            f"{other.spec.name!r} ({other.path}) in bucket {pipeline.spec.data.bucket!r}; "
            "their stages would take each other's files",
        )
        for field, prefix in data_prefixes(pipeline.spec)
        for other_field, other_prefix in data_prefixes(other.spec)
        if prefix.startswith(other_prefix) or other_prefix.startswith(prefix)
    ]


def _shared_ports(pipeline: PlannedPipeline, other: PlannedPipeline) -> list[Problem]:
    """Online endpoints of two pipelines on one port: replicas bind with SO_REUSEPORT, so the
    kernel would not refuse the second but spread one port's clients over both models."""
    ours, theirs = serve_ports(pipeline.spec), serve_ports(other.spec)
    return [
        Problem(
            ("streaming", "serve", name),
            f"port {port} is also streaming.serve.{other_name} of pipeline {other.spec.name!r} "
            f"({other.path}); each pipeline's endpoint needs ports of its own",
        )
        for name, port in ours.items()
        for other_name, other_port in theirs.items()
        if port == other_port
    ]


def serve_ports(spec: PipelineSpec) -> dict[str, int]:
    """The ports a pipeline's local replicas serve online on (a Kubernetes pod has its own)."""
    streaming = spec.streaming
    if streaming is None or streaming.serve is None or streaming.backend != "local":
        return {}
    serve = streaming.serve
    return {name: port for name, port in
            (("http_port", serve.http_port), ("grpc_port", serve.grpc_port)) if port}  # fmt: skip


def data_prefixes(spec: PipelineSpec) -> list[tuple[tuple[str, ...], str]]:
    """Every prefix a pipeline's stages list and write in its bucket, by spec field."""
    data = spec.data
    found: list[tuple[tuple[str, ...], str]] = [
        (("data", name), getattr(data, name))
        for name in ("landing_prefix", "validated_prefix", "quarantine_prefix")
    ]
    found.append((("data", "archive_prefix"), data.archive_root))
    if spec.batch_inference is not None:
        found.append((("batch_inference", "output_prefix"), spec.batch_inference.output_prefix))
    if (logged := log_prefix(spec)) is not None:
        found.append((("streaming", "prediction_log_prefix"), logged))
    return found


def check_pipeline(path: Path) -> PlannedPipeline:
    """Load, check and plan one spec; raise SpecError naming the file, field and reason."""
    spec = load_spec(path)
    paths = ProjectPaths.beside(path.parent)
    suite = paths.suite_file(spec)
    if not suite.is_file():
        problem = Problem(("data", "expectation_suite"), f"no suite file {suite}")
        raise SpecError.located(path, [problem])
    try:
        dags = plan_pipeline(spec, paths)
    except Exception as exc:  # a planner bug must not take the other pipelines down
        problem = Problem((), f"cannot be planned into DAGs: {type(exc).__name__}: {exc}")
        raise SpecError.located(path, [problem]) from exc
    return PlannedPipeline(spec, path, tuple(dags))
