"""The demo feed's run parameters: one typed model for the trigger form and for the task.

The plan turns it into the ``<pipeline>.demo_feed`` trigger form; the feed validates a run's
values with it. Adding a knob is one field here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopline.demo.columns import NUMERIC_FEATURES
from loopline.spec.sections import DemoSpec, FileFormat

_BATCH = {"section": "Batch"}
_DRIFT = {"section": "Drift knobs"}
_ROWS = DemoSpec.model_fields["rows"].metadata  # the spec's own bounds for a batch's rows


class FeedParams(BaseModel):
    """What one demo batch looks like, and how far it drifts from the reference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: Annotated[
        int,
        *_ROWS,
        Field(
            title="Rows",
            description="How many transactions the batch holds.",
            json_schema_extra=_BATCH,
        ),
    ] = 5_000
    file_format: Annotated[
        FileFormat,
        Field(
            title="File format", description="Format of the landed file.", json_schema_extra=_BATCH
        ),
    ] = FileFormat.PARQUET
    seed: Annotated[
        int | None,
        Field(
            title="Seed",
            description="Leave empty to derive it from the run id: a retry lands identical bytes.",
            json_schema_extra=_BATCH,
        ),
    ] = None
    mean_shift: Annotated[
        float,
        Field(
            ge=-10,
            le=10,
            title="Mean shift (std devs)",
            description="Added to the first N numeric features.",
            json_schema_extra=_DRIFT,
        ),
    ] = 0.0
    drifted_features: Annotated[
        int,
        Field(
            ge=0,
            le=len(NUMERIC_FEATURES),
            title="Drifted features (N)",
            description="How many numeric features get the mean shift.",
            json_schema_extra=_DRIFT,
        ),
    ] = 0
    new_category_share: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            title="New category share",
            description="Share of rows whose merchant category is unseen.",
            json_schema_extra=_DRIFT,
        ),
    ] = 0.0
    label_shift: Annotated[
        float,
        Field(
            ge=-0.5,
            le=0.5,
            title="Label shift",
            description="Added to the base fraud rate.",
            json_schema_extra=_DRIFT,
        ),
    ] = 0.0

    @field_validator("seed", mode="before")
    @classmethod
    def _empty_seed_is_none(cls, value: object) -> object:
        return None if value == "" else value  # an emptied form field
