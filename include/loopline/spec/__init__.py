"""Pipeline specs: one YAML file per model, parsed into typed, validated objects."""

from loopline.spec.loader import (
    PipelineSpecsInvalid,
    SpecError,
    SpecSet,
    describe_errors,
    load_spec,
    load_specs,
    pipelines_folder,
)
from loopline.spec.model import FileFormat, PipelineSpec, Problem

__all__ = [
    "FileFormat",
    "PipelineSpec",
    "PipelineSpecsInvalid",
    "Problem",
    "SpecError",
    "SpecSet",
    "describe_errors",
    "load_spec",
    "load_specs",
    "pipelines_folder",
]
