"""Pipeline specs: one YAML file per model, parsed into typed, validated objects."""

from loopline.spec.loader import SpecError, SpecSet, describe_errors, load_spec, load_specs
from loopline.spec.model import FileFormat, PipelineSpec, Problem

__all__ = [
    "FileFormat",
    "PipelineSpec",
    "Problem",
    "SpecError",
    "SpecSet",
    "describe_errors",
    "load_spec",
    "load_specs",
]
