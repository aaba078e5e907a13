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

from loopline.plan import ProjectPaths, plan_pipeline
from loopline.plan.model import DagPlan
from loopline.spec.loader import PipelineSpecsInvalid, SpecError, load_spec, spec_files
from loopline.spec.model import PipelineSpec, Problem


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
    """Check every spec of `folder` (or just `files`), each against the project beside it."""
    pipelines, errors = [], []
    for path in files if files is not None else spec_files(folder):
        try:
            pipelines.append(check_pipeline(Path(path)))
        except SpecError as error:
            errors.append(error)
    return PipelineCheck(tuple(pipelines), tuple(errors))


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
