"""``<pipeline>.batch_score``: score the validated data of a window with the champion (or a
chosen version) on Spark."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from loopline.plan.assets import predictions_asset
from loopline.plan.params import WindowEnd, bounds, params_from_model, window_end_field
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import BatchScore
from loopline.plan.vocabulary import SPARK_POOL, DagPlan, PipelineTarget, Stage, TaskPlan, dag_plan
from loopline.spec.sections import PipelineSpec, TrainingSpec

_FORM = {"section": "Scoring"}


class ScoreParams(BaseModel):
    """The scoring task's run arguments, and the ``<pipeline>.batch_score`` trigger form."""

    window_days: Annotated[
        int,
        Field(
            **bounds(TrainingSpec, "window_days"),
            title="Window (days)",
            description="Score the validated data of this many days before the window's end.",
            json_schema_extra=_FORM,
        ),
    ] = 1
    model_version: Annotated[
        str,
        Field(
            pattern="^(champion|challenger|[0-9]+)$",
            title="Model version",
            description="champion, challenger, or a version number from the registry.",
            json_schema_extra=_FORM,
        ),
    ] = "champion"
    window_end: Annotated[
        WindowEnd,
        window_end_field(
            "Score the window ending here (UTC), e.g. 2024-06-30 for data with past dates; "
            "empty: when the run was due.",
            "Scoring",
        ),
    ] = None


def plan_batch_scoring(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    if spec.batch_inference is None:
        return None
    output = spec.batch_inference.output_prefix
    score = TaskPlan(
        "score",
        BatchScore(
            paths.spec_ref(spec),
            window_days="{{ params.window_days }}",
            model_version="{{ params.model_version }}",
            window_end="{{ params.window_end }}",
        ),
        outlets=(predictions_asset(spec, output),),
        pool=SPARK_POOL,
        doc_md="A Spark application on spark_default: read, score, stage, commit per date.",
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.BATCH_SCORE,
        description=f"Scores validated {spec.name} data with the champion on Spark",
        schedule=spec.batch_inference.schedule,
        tasks=(score,),
        params=params_from_model(ScoreParams),
        doc_md=(
            f"### {spec.name}: batch scoring\n"
            f"Scores the validated data of the window with the champion and writes "
            f"`s3://{spec.data.bucket}/{output}dt=<date>/`, "
            "each date made visible only when the whole job succeeded (`_SUCCESS.json`)."
        ),
    )
