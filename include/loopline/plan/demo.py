"""``<pipeline>.demo_feed``: land seeded synthetic batches, with drift knobs in the form."""

from __future__ import annotations

from loopline.demo.params import FeedParams
from loopline.plan.assets import landing_asset
from loopline.plan.params import params_from_model
from loopline.plan.paths import ProjectPaths
from loopline.plan.tasks import LandDemoBatch
from loopline.plan.vocabulary import DagPlan, PipelineTarget, Stage, TaskPlan, dag_plan
from loopline.spec.sections import PipelineSpec


def plan_demo_feed(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    if spec.demo is None:
        return None
    demo, data = spec.demo, spec.data
    params = params_from_model(FeedParams, {"rows": demo.rows, "file_format": data.format})
    land = TaskPlan(
        "land_batch",
        LandDemoBatch(
            pipeline=spec.name,
            bucket=data.bucket,
            landing_prefix=data.landing_prefix,
            base_seed=demo.seed,
            fraud_rate=demo.fraud_rate,
            batch={p.name: f"{{{{ params.{p.name} }}}}" for p in params},
        ),
        outlets=(landing_asset(spec),),
        doc_md="Generates one seeded batch and writes it create-only to the landing prefix.",
    )
    return dag_plan(
        PipelineTarget.of(spec),
        Stage.DEMO_FEED,
        description=f"Lands synthetic batches for {spec.name} in "
        f"s3://{data.bucket}/{data.landing_prefix}",
        schedule=demo.schedule,
        tasks=(land,),
        params=params,
        doc_md=(
            f"### {spec.name}: demo feed\n"
            f"Lands a seeded batch of synthetic card transactions in "
            f"`s3://{data.bucket}/{data.landing_prefix}` every run "
            f"(schedule `{demo.schedule}`). Trigger it with the form to choose the row count, "
            "the file format and drift knobs (shifted means, new categories, label shift)."
        ),
    )
