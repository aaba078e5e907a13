"""Where a project keeps its pipeline specs and the expectation suites they name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loopline.plan.tasks import SpecFile
from loopline.spec.loader import SPEC_SUFFIXES, spec_sha256
from loopline.spec.sections import PipelineSpec

EXPECTATIONS_ENV = "LOOPLINE_EXPECTATIONS_DIR"


@dataclass(frozen=True)
class ProjectPaths:
    """Spec files in `pipelines`; suites in `expectations`."""

    pipelines: Path
    expectations: Path

    @classmethod
    def beside(cls, pipelines: Path) -> ProjectPaths:
        """Suites in ``$LOOPLINE_EXPECTATIONS_DIR``, else in ``expectations/`` next to specs."""
        override = os.environ.get(EXPECTATIONS_ENV)
        pipelines = Path(pipelines)
        return cls(pipelines, Path(override) if override else pipelines.parent / "expectations")

    def spec_file(self, spec: PipelineSpec | str) -> Path:
        """The file a pipeline's spec was read from, whichever accepted suffix it has."""
        name = spec if isinstance(spec, str) else spec.name
        for suffix in SPEC_SUFFIXES:
            if (path := self.pipelines / f"{name}{suffix}").is_file():
                return path
        return self.pipelines / f"{name}{SPEC_SUFFIXES[0]}"

    def spec_ref(self, spec: PipelineSpec) -> SpecFile:
        """The spec file and the version of it being planned now."""
        path = self.spec_file(spec)
        return SpecFile(str(path), spec_sha256(path))

    def suite_file(self, spec: PipelineSpec) -> Path:
        return self.expectations / f"{spec.data.expectation_suite}.json"
