"""Pipeline specs: one YAML file per model, parsed into typed, validated objects."""

from loopline.spec.loader import (
    PipelineSpecsInvalid,
    SpecChangedError,
    SpecError,
    describe_errors,
    load_spec,
    pipelines_folder,
    spec_sha256,
)
from loopline.spec.sections import FileFormat, PipelineSpec, Problem

__all__ = [
    "FileFormat",
    "PipelineSpec",
    "PipelineSpecsInvalid",
    "Problem",
    "SpecChangedError",
    "SpecError",
    "describe_errors",
    "load_spec",
    "pipelines_folder",
    "spec_sha256",
]
