"""``<pipeline>.validate``: wait (deferred) for landed files, validate and route each, publish
the ones that passed, then judge the run."""

from __future__ import annotations

from loopline.plan.assets import landing_asset, validated_asset
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import (
    GroupLanded,
    MapOver,
    PublishValidated,
    ValidateFiles,
    ValidationVerdict,
    WaitForObjects,
    XCom,
)
from loopline.plan.vocabulary import DagPlan, PipelineTarget, Stage, TaskPlan, TriggerRule, dag_plan
from loopline.spec.sections import PipelineSpec


def plan_validation(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    data, gate = spec.data, spec.validation
    spec_file = paths.spec_ref(spec)
    wait = TaskPlan(
        "wait_for_landing",
        WaitForObjects(data.bucket, data.landing_prefix, gate.wait_minutes, gate.poll_seconds),
        doc_md="Deferred in the triggerer until a file is under the landing prefix.",
    )
    tasks = (
        *((wait,) if gate.wait_minutes else ()),
        TaskPlan(
            "list_landed",
            GroupLanded(
                data.bucket,
                data.landing_prefix,
                gate.max_files_per_run,
                files_per_task=gate.files_per_task,
                bytes_per_task=int(gate.mib_per_task * 2**20),
            ),
            upstream=("wait_for_landing",) if gate.wait_minutes else (),
            doc_md="The files to validate, in groups of up to "
            f"{gate.files_per_task} files / {gate.mib_per_task:g} MiB (one task each); "
            "none: the run ends at once, saying so.",
        ),
        TaskPlan(
            "validate",
            ValidateFiles(spec_file, str(paths.suite_file(spec)), keys=MapOver("list_landed")),
            doc_md="One group of files each, named by its first and last file: validate each "
            "file with Great Expectations, then move it to validated/ or quarantine/ (with "
            "its report). Each file's outcome is in the log and in its record.",
        ),
        TaskPlan(
            "publish_validated",
            PublishValidated(results=XCom("validate")),
            upstream=("validate",),
            outlets=(validated_asset(spec),),
            trigger_rule=TriggerRule.ALL_DONE,
            doc_md="One asset event listing the files that passed.",
        ),
        TaskPlan(
            "verdict",
            ValidationVerdict(
                spec_file,
                results=XCom("validate"),
                keys=XCom("list_landed"),
                fail_on_invalid=gate.fail_run_on_invalid,
            ),
            upstream=("validate",),
            trigger_rule=TriggerRule.ALL_DONE,
            doc_md="Fails the run naming every quarantined file and why "
            "(unless validation.fail_run_on_invalid is false).",
        ),
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.VALIDATE,
        description=f"Validates files landing in s3://{data.bucket}/{data.landing_prefix}",
        schedule=gate.schedule,
        schedule_assets=(landing_asset(spec),),
        tasks=tasks,
        doc_md=(
            f"### {spec.name}: validation gate\n"
            f"Every file under `s3://{data.bucket}/{data.landing_prefix}` is checked with the "
            f"Great Expectations suite `{data.expectation_suite}` and moved, byte-identical, to "
            f"`{data.validated_prefix}` or to `{data.quarantine_prefix}` with a JSON report "
            "beside it. Runs on each landing asset event and on its schedule."
        ),
    )
