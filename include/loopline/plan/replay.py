"""``<pipeline>.replay``: from the trigger form, quarantined files back to landing (the validate
DAG picks them up: the replay emits the landing asset event it runs on) or dead letters back
to the input topic (a pipeline with a streaming section).

The form is the union of the tasks' typed arguments (``ReplayChoice``,
``QuarantineArguments``, ``DeadLetterArguments``); a branch on ``what`` runs one task.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from loopline.plan.assets import landing_asset
from loopline.plan.params import params_from_model
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import ChooseReplay, ReplayDeadLetters, ReplayQuarantined
from loopline.plan.vocabulary import DagPlan, PipelineTarget, Stage, TaskPlan, dag_plan
from loopline.spec.sections import PipelineSpec

_FORM = {"section": "Replay"}
ReplayWhat = Literal["quarantine", "dead_letters"]


class ReplayChoice(BaseModel):
    what: Annotated[
        ReplayWhat,
        Field(
            title="What",
            description="quarantine: the quarantined files named below go back to landing and "
            "are validated again with the current suite; dead_letters: the dead-lettered "
            "events go back to the input topic.",
            json_schema_extra=_FORM,
        ),
    ] = "quarantine"


class QuarantineArguments(BaseModel):
    objects: Annotated[
        list[str],
        Field(
            max_length=1000,
            title="Quarantined files",
            description="quarantine: keys (or s3:// URIs) of quarantined files, or prefixes "
            "under the quarantine prefix, one a line (e.g. "
            "card_fraud/quarantine/dt=2026-11-23/c.csv).",
            json_schema_extra=_FORM,
        ),
    ] = []


class DeadLetterArguments(BaseModel):
    max_events: Annotated[
        int,
        Field(
            ge=1,
            le=100_000,
            title="Max events",
            description="dead_letters: at most this many letters are read and replayed; a "
            "next run goes on from the letters this one did not reach.",
            json_schema_extra=_FORM,
        ),
    ] = 1000
    force: Annotated[
        bool,
        Field(
            title="Force",
            description="dead_letters: replay events the output topic already holds a "
            "prediction for (they are scored again), and letters an earlier replay settled.",
            json_schema_extra=_FORM,
        ),
    ] = False


class ReplayParams(DeadLetterArguments, QuarantineArguments, ReplayChoice):
    """The ``<pipeline>.replay`` trigger form: what, then each choice's arguments."""


def plan_replay(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    spec_file, data = paths.spec_ref(spec), spec.data
    branches = {
        "quarantine": TaskPlan(
            "replay_quarantined",
            ReplayQuarantined(spec_file, objects="{{ params.objects }}"),
            upstream=("choose",),
            outlets=(landing_asset(spec),),  # the validate DAG runs on it
            doc_md="Moves each named quarantined file back to its landing key (verified; its "
            "reports to the archive), recorded; the landing event starts the validate DAG.",
        ),
    }
    if spec.streaming is not None:
        branches["dead_letters"] = TaskPlan(
            "replay_dead_letters",
            ReplayDeadLetters(spec_file, max_events="{{ params.max_events }}",
                              force="{{ params.force }}"),
            upstream=("choose",),
            doc_md="Produces dead-lettered events again to the input topic; events already "
            "scored are reported and skipped unless forced; recorded.",
        )  # fmt: skip
    choose = TaskPlan(
        "choose",
        ChooseReplay(
            what="{{ params.what }}",
            branches={what: task.task_id for what, task in branches.items()},
        ),
        doc_md="Runs the task of the form's choice.",
    )
    streaming = spec.streaming
    dead_letters = f" or `{streaming.dead_letters}`" if streaming else ""
    what = "quarantined files or dead letters" if streaming else "quarantined files"
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.REPLAY,
        description=f"Replays {spec.name}'s {what}",
        schedule=None,
        tasks=(choose, *branches.values()),
        params=params_from_model(ReplayParams),
        doc_md=(
            f"### {spec.name}: replay\n"
            f"Trigger with the form: files under `s3://{data.bucket}/{data.quarantine_prefix}`"
            f"{dead_letters} go back where they came from, once the suite, the data or the "
            "model was fixed. Keys already validated or scored are reported, not processed "
            "twice. Every replay is a `replay` record."
        ),
    )
