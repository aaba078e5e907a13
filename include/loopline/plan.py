"""A neutral plan between specs and Airflow: which DAGs a pipeline has, and their tasks.

Nothing here imports Airflow. A task is an id, a kind and its arguments; one small function in
``loopline.airflow.factory`` renders plans into DAGs. Each stage of the loop adds a planner
below; the factory picks them all up, so adding a model is a new spec, not new Python.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from loopline.spec.model import FileFormat, PipelineSpec

START_DATE = datetime(2026, 1, 1)


class TaskKind(StrEnum):
    LAND_DEMO_BATCH = "land_demo_batch"
    WAIT_FOR_OBJECTS = "wait_for_objects"
    LIST_OBJECTS = "list_objects"
    VALIDATE_BATCH = "validate_batch"
    PUBLISH_VALIDATED = "publish_validated"
    VALIDATION_VERDICT = "validation_verdict"
    TRAINING_SNAPSHOT = "training_snapshot"
    TRAIN_MODEL = "train_model"
    JUDGE_CANDIDATE = "judge_candidate"
    APPROVE_PROMOTION = "approve_promotion"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    BATCH_SCORE = "batch_score"


GPU_POOL = "gpu"  # one slot: two trainings never share a card (see airflow_settings.yaml)


@dataclass(frozen=True)
class ProjectPaths:
    """Where specs and the files they name (expectation suites) live."""

    pipelines: Path
    expectations: Path

    @classmethod
    def beside(cls, pipelines: Path) -> ProjectPaths:
        """Suites in ``$LOOPLINE_EXPECTATIONS_DIR``, else in ``expectations/`` next to specs."""
        override = os.environ.get("LOOPLINE_EXPECTATIONS_DIR")
        return cls(
            Path(pipelines), Path(override) if override else Path(pipelines).parent / "expectations"
        )

    def spec_file(self, spec: PipelineSpec) -> Path:
        return self.pipelines / f"{spec.name}.yaml"

    def suite_file(self, spec: PipelineSpec) -> Path:
        return self.expectations / f"{spec.data.expectation_suite}.json"


@dataclass(frozen=True)
class AssetRef:
    name: str
    uri: str


@dataclass(frozen=True)
class ParamPlan:
    """A run parameter with its JSON schema; Airflow validates it and draws the trigger form."""

    name: str
    default: Any
    schema: Mapping[str, Any]
    title: str
    description: str
    section: str = "Run parameters"


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    kind: TaskKind
    arguments: Mapping[str, Any]
    upstream: tuple[str, ...] = ()
    outlets: tuple[AssetRef, ...] = ()
    doc_md: str = ""
    # argument name -> upstream task id whose returned list fans this task out, one per item
    expand: Mapping[str, str] = field(default_factory=dict)
    trigger_rule: str = "all_success"
    pool: str | None = None


@dataclass(frozen=True)
class DagPlan:
    dag_id: str
    pipeline: str
    stage: str
    description: str
    schedule: str | None
    owner: str
    retries: int
    tags: tuple[str, ...]
    tasks: tuple[TaskPlan, ...]
    params: tuple[ParamPlan, ...] = ()
    doc_md: str = ""
    max_active_runs: int = 1
    schedule_assets: tuple[AssetRef, ...] = ()  # runs on these assets' events (or schedule)
    start_date: datetime = START_DATE


def dag_id(spec: PipelineSpec, stage: str) -> str:
    return f"{spec.name}.{stage}"


def landing_asset(spec: PipelineSpec) -> AssetRef:
    """The asset whose events say "a batch landed"; the validation stage listens to it."""
    return _s3_asset(spec, "landing", spec.data.landing_prefix)


def _s3_asset(spec: PipelineSpec, kind: str, prefix: str) -> AssetRef:
    """The asset `<pipeline>.<kind>`, identified by its S3 location in the spec's bucket."""
    return AssetRef(name=f"{spec.name}.{kind}", uri=f"s3://{spec.data.bucket}/{prefix.rstrip('/')}")


def validated_asset(spec: PipelineSpec) -> AssetRef:
    """The asset whose events say "new validated data"; batch scoring and drift listen to it."""
    return _s3_asset(spec, "validated", spec.data.validated_prefix)


def plan_demo_feed(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    """A DAG that lands seeded synthetic batches, with drift knobs in its trigger form."""
    if spec.demo is None:
        return None
    demo = spec.demo
    params = (
        ParamPlan(
            "rows",
            demo.rows,
            {"type": "integer", "minimum": 1, "maximum": 5_000_000},
            "Rows",
            "How many transactions the batch holds.",
            "Batch",
        ),
        ParamPlan(
            "file_format",
            str(spec.data.format),
            {"type": "string", "enum": [str(f) for f in FileFormat]},
            "File format",
            "Format of the landed file.",
            "Batch",
        ),
        ParamPlan(
            "seed",
            None,
            {"type": ["null", "integer"]},
            "Seed",
            "Leave empty to derive it from the run id: a retry lands identical bytes.",
            "Batch",
        ),
        ParamPlan(
            "mean_shift",
            0.0,
            {"type": "number", "minimum": -10, "maximum": 10},
            "Mean shift (std devs)",
            "Added to the first N numeric features.",
            "Drift knobs",
        ),
        ParamPlan(
            "drifted_features",
            0,
            {"type": "integer", "minimum": 0, "maximum": 30},
            "Drifted features (N)",
            "How many numeric features get the mean shift.",
            "Drift knobs",
        ),
        ParamPlan(
            "new_category_share",
            0.0,
            {"type": "number", "minimum": 0, "maximum": 1},
            "New category share",
            "Share of rows whose merchant category is unseen.",
            "Drift knobs",
        ),
        ParamPlan(
            "label_shift",
            0.0,
            {"type": "number", "minimum": -0.5, "maximum": 0.5},
            "Label shift",
            "Added to the base fraud rate.",
            "Drift knobs",
        ),
    )
    batch = {name: f"{{{{ params.{name} }}}}" for name in (p.name for p in params)}
    land = TaskPlan(
        task_id="land_batch",
        kind=TaskKind.LAND_DEMO_BATCH,
        arguments={
            "pipeline": spec.name,
            "bucket": spec.data.bucket,
            "landing_prefix": spec.data.landing_prefix,
            "base_seed": demo.seed,
            "fraud_rate": demo.fraud_rate,
            "batch": batch,
        },
        outlets=(landing_asset(spec),),
        doc_md="Generates one seeded batch and writes it create-only to the landing prefix.",
    )
    return DagPlan(
        dag_id=dag_id(spec, "demo_feed"),
        pipeline=spec.name,
        stage="demo_feed",
        description=f"Lands synthetic batches for {spec.name} in "
        f"s3://{spec.data.bucket}/{spec.data.landing_prefix}",
        schedule=demo.schedule,
        owner=spec.owner,
        retries=spec.retries,
        tags=(*spec.all_tags, "stage:demo_feed"),
        tasks=(land,),
        params=params,
        doc_md=(
            f"### {spec.name}: demo feed\n"
            f"Lands a seeded batch of synthetic card transactions in "
            f"`s3://{spec.data.bucket}/{spec.data.landing_prefix}` every run "
            f"(schedule `{demo.schedule}`). Trigger it with the form to choose the row count, "
            "the file format and drift knobs (shifted means, new categories, label shift)."
        ),
    )


def plan_validation(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    """Wait (deferred) for landed files, validate each, route it, publish, then judge the run."""
    data, gate = spec.data, spec.validation
    tasks = (
        TaskPlan(
            "wait_for_landing",
            TaskKind.WAIT_FOR_OBJECTS,
            {
                "bucket": data.bucket,
                "prefix": data.landing_prefix,
                "timeout_minutes": gate.wait_minutes,
            },
            doc_md="Deferred in the triggerer until a file is under the landing prefix.",
        ),
        TaskPlan(
            "list_landed",
            TaskKind.LIST_OBJECTS,
            {
                "bucket": data.bucket,
                "prefix": data.landing_prefix,
                "max_keys": gate.max_files_per_run,
            },
            upstream=("wait_for_landing",),
        ),
        TaskPlan(
            "validate",
            TaskKind.VALIDATE_BATCH,
            {"spec_path": str(paths.spec_file(spec)), "suite_path": str(paths.suite_file(spec))},
            expand={"key": "list_landed"},
            doc_md="One file each: validate with Great Expectations, then move it to "
            "validated/ or quarantine/ (with its report).",
        ),
        TaskPlan(
            "publish_validated",
            TaskKind.PUBLISH_VALIDATED,
            {"results_from": "validate"},
            upstream=("validate",),
            outlets=(validated_asset(spec),),
            trigger_rule="all_done",
            doc_md="One asset event listing the files that passed.",
        ),
        TaskPlan(
            "verdict",
            TaskKind.VALIDATION_VERDICT,
            {
                "results_from": "validate",
                "keys_from": "list_landed",
                "fail_on_invalid": gate.fail_run_on_invalid,
            },
            upstream=("validate",),
            trigger_rule="all_done",
            doc_md="Fails the run naming every quarantined file and why "
            "(unless validation.fail_run_on_invalid is false).",
        ),
    )
    return DagPlan(
        dag_id=dag_id(spec, "validate"),
        pipeline=spec.name,
        stage="validate",
        description=f"Validates files landing in s3://{data.bucket}/{data.landing_prefix}",
        schedule=gate.schedule,
        schedule_assets=(landing_asset(spec),),
        owner=spec.owner,
        retries=spec.retries,
        tags=(*spec.all_tags, "stage:validate"),
        tasks=tasks,
        doc_md=(
            f"### {spec.name}: validation gate\n"
            f"Every file under `s3://{data.bucket}/{data.landing_prefix}` is checked with the "
            f"Great Expectations suite `{data.expectation_suite}` and moved, byte-identical, to "
            f"`{data.validated_prefix}` or to `{data.quarantine_prefix}` with a JSON report "
            "beside it. Runs on each landing asset event and on its schedule."
        ),
    )


def champion_asset(spec: PipelineSpec) -> AssetRef:
    """The asset whose events say "a new champion": batch and streaming scoring listen."""
    return _s3_asset(spec, "champion", f"models/{spec.name}/aliases/champion")


def plan_training(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    """Snapshot validated data, train and register a candidate, judge it, promote it."""
    training, hyper = spec.training, spec.model.hyperparameters
    spec_path = {"spec_path": str(paths.spec_file(spec))}
    params = (
        ParamPlan(
            "epochs",
            hyper.epochs,
            {"type": "integer", "minimum": 1, "maximum": 1000},
            "Epochs",
            "At most this many epochs (early stopping may end sooner).",
            "Training",
        ),
        ParamPlan(
            "window_days",
            training.window_days,
            {"type": "integer", "minimum": 1, "maximum": 3650},
            "Data window (days)",
            "Train on the validated rows of this many days before the run.",
            "Training",
        ),
        ParamPlan(
            "reason",
            "manual",
            {"type": "string", "minLength": 1, "maxLength": 500},
            "Reason",
            "Why this retraining runs; kept in the model's lineage.",
            "Training",
        ),
    )
    tasks = [
        TaskPlan(
            "snapshot",
            TaskKind.TRAINING_SNAPSHOT,
            {**spec_path, "window_days": "{{ params.window_days }}"},
            doc_md="The validated rows of the window, split into train and holdout by key; "
            "the objects read and their sha256 are recorded.",
        ),
        TaskPlan(
            "train",
            TaskKind.TRAIN_MODEL,
            {**spec_path, "epochs": "{{ params.epochs }}", "reason": "{{ params.reason }}"},
            upstream=("snapshot",),
            pool=GPU_POOL,
            doc_md="Trains the spec's Keras model (GPU when visible) and registers it.",
        ),
        TaskPlan(
            "judge",
            TaskKind.JUDGE_CANDIDATE,
            {**spec_path, "version_from": "train"},
            upstream=("train",),
            doc_md="Candidate and champion on the same holdout, against the promotion gates.",
        ),
    ]
    promote_after = "judge"
    if spec.promotion.require_approval:
        tasks.append(
            TaskPlan(
                "approve",
                TaskKind.APPROVE_PROMOTION,
                {"pipeline": spec.name, "judgement_from": "judge"},
                upstream=("judge",),
                doc_md="A person approves (or rejects) the promotion in the Airflow UI.",
            )
        )
        promote_after = "approve"
    tasks.append(
        TaskPlan(
            "promote",
            TaskKind.PROMOTE,
            {**spec_path, "judgement_from": "judge"},
            upstream=(promote_after,),
            outlets=(champion_asset(spec),),
            doc_md="Champion if it passed (a champion asset event), else challenger.",
        )
    )
    return DagPlan(
        dag_id=dag_id(spec, "train"),
        pipeline=spec.name,
        stage="train",
        description=f"Retrains {spec.name} on validated data and promotes it if it is better",
        schedule=training.schedule,
        owner=spec.owner,
        retries=spec.retries,
        tags=(*spec.all_tags, "stage:train"),
        tasks=tuple(tasks),
        params=params,
        doc_md=(
            f"### {spec.name}: retraining and promotion\n"
            f"Trains on the last `window_days` of validated data, registers the model under "
            f"`s3://{spec.data.bucket}/models/{spec.name}/`, and promotes it to champion only "
            f"if it beats the champion on the same holdout ({spec.promotion.metric} by at "
            f"least {spec.promotion.min_improvement}) and passes every gate."
        ),
    )


def plan_rollback(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan:
    """One manual trigger restores the previous champion."""
    return DagPlan(
        dag_id=dag_id(spec, "rollback"),
        pipeline=spec.name,
        stage="rollback",
        description=f"Restores the champion {spec.name} had before its last promotion",
        schedule=None,
        owner=spec.owner,
        retries=spec.retries,  # a retry sees this run's own move and does not roll back twice
        tags=(*spec.all_tags, "stage:rollback"),
        tasks=(
            TaskPlan(
                "rollback",
                TaskKind.ROLLBACK,
                {"spec_path": str(paths.spec_file(spec)), "reason": "{{ params.reason }}"},
                outlets=(champion_asset(spec),),
            ),
        ),
        params=(
            ParamPlan(
                "reason",
                "",
                {"type": "string", "minLength": 1, "maxLength": 500},
                "Reason",
                "Why the champion is rolled back; kept in the alias history.",
                "Rollback",
            ),
        ),
        doc_md=f"### {spec.name}: rollback\nTrigger with a reason to restore the previous "
        "champion. Each rollback undoes one more promotion.",
    )


def predictions_asset(spec: PipelineSpec, output_prefix: str) -> AssetRef:
    """The asset whose events say "new predictions"; drift audits can follow them."""
    return _s3_asset(spec, "predictions", output_prefix)


def plan_batch_scoring(spec: PipelineSpec, paths: ProjectPaths) -> DagPlan | None:
    """Score the validated data of a window with the champion (or a chosen version) on Spark."""
    if spec.batch_inference is None:
        return None
    params = (
        ParamPlan(
            "window_days",
            1,
            {"type": "integer", "minimum": 1, "maximum": 3650},
            "Window (days)",
            "Score the validated data of this many days before the run.",
            "Scoring",
        ),
        ParamPlan(
            "model_version",
            "champion",
            {"type": "string", "pattern": "^(champion|challenger|[0-9]+)$"},
            "Model version",
            "champion, challenger, or a version number from the registry.",
            "Scoring",
        ),
    )
    score = TaskPlan(
        "score",
        TaskKind.BATCH_SCORE,
        {
            "spec_path": str(paths.spec_file(spec)),
            "window_days": "{{ params.window_days }}",
            "model_version": "{{ params.model_version }}",
        },
        outlets=(predictions_asset(spec, spec.batch_inference.output_prefix),),
        pool="spark",
        doc_md="A Spark application on spark_default: read, score, stage, commit per date.",
    )
    return DagPlan(
        dag_id=dag_id(spec, "batch_score"),
        pipeline=spec.name,
        stage="batch_score",
        description=f"Scores validated {spec.name} data with the champion on Spark",
        schedule=spec.batch_inference.schedule,
        owner=spec.owner,
        retries=spec.retries,
        tags=(*spec.all_tags, "stage:batch_score"),
        tasks=(score,),
        params=params,
        doc_md=(
            f"### {spec.name}: batch scoring\n"
            f"Scores the validated data of the window with the champion and writes "
            f"`s3://{spec.data.bucket}/{spec.batch_inference.output_prefix}dt=<date>/`, "
            "each date made visible only when the whole job succeeded (`_SUCCESS.json`)."
        ),
    )


# Every stage's planner; a stage that does not apply to a spec returns None.
PLANNERS: tuple[Callable[[PipelineSpec, ProjectPaths], DagPlan | None], ...] = (
    plan_demo_feed,
    plan_validation,
    plan_training,
    plan_rollback,
    plan_batch_scoring,
)


def plan_pipeline(spec: PipelineSpec, paths: ProjectPaths) -> list[DagPlan]:
    return [plan for planner in PLANNERS if (plan := planner(spec, paths)) is not None]
