"""The assets stages hand each other: the contract between the DAGs of one pipeline.

Each is named ``<pipeline>.<kind>`` and identified by its S3 location; the champion's
location is the registry's alias log, asked of the registry rather than copied here.
"""

from __future__ import annotations

from loopline.plan.vocabulary import AssetRef
from loopline.registry.layout import CHAMPION, alias_prefix
from loopline.spec.sections import PipelineSpec


def _s3_asset(spec: PipelineSpec, kind: str, prefix: str) -> AssetRef:
    return AssetRef(name=f"{spec.name}.{kind}", uri=f"s3://{spec.data.bucket}/{prefix.rstrip('/')}")


def landing_asset(spec: PipelineSpec) -> AssetRef:
    """ "A batch landed": the validation gate listens."""
    return _s3_asset(spec, "landing", spec.data.landing_prefix)


def validated_asset(spec: PipelineSpec) -> AssetRef:
    """ "New validated data": batch scoring and drift audits listen."""
    return _s3_asset(spec, "validated", spec.data.validated_prefix)


def champion_asset(spec: PipelineSpec) -> AssetRef:
    """ "A new champion": batch and streaming scoring listen."""
    return _s3_asset(spec, "champion", alias_prefix(spec.name, CHAMPION))


def predictions_asset(spec: PipelineSpec, output_prefix: str) -> AssetRef:
    """ "New predictions": drift audits can follow them."""
    return _s3_asset(spec, "predictions", output_prefix)
