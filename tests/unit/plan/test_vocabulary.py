"""A plan checks its own wiring when it is built: a mistake is an error naming the DAG."""

from __future__ import annotations

import pytest
from loopline.plan.tasks import (
    GroupLanded,
    JudgeCandidate,
    MapOver,
    SpecFile,
    ValidateFiles,
    XCom,
)
from loopline.plan.vocabulary import DagPlan, PlanError, Stage, TaskPlan

SPEC = SpecFile("s.yaml", "ab" * 32)


def dag(*tasks: TaskPlan) -> DagPlan:
    return DagPlan(
        dag_id="fraud.train",
        pipeline="fraud",
        stage=Stage.TRAIN,
        description="",
        schedule=None,
        owner="me",
        retries=1,
        tags=(),
        tasks=tasks,
    )


LIST = TaskPlan("list", GroupLanded("bucket", "landing/", 10, 5, 2**20))


def test_an_xcom_read_from_an_upstream_task_is_accepted() -> None:
    judge = TaskPlan("judge", JudgeCandidate(SPEC, version=XCom("list")), ("list",))
    assert dag(LIST, judge).task("judge").args.xcom_inputs() == {"version": XCom("list")}


def test_an_xcom_read_from_a_task_that_is_not_upstream_is_a_plan_error() -> None:
    judge = TaskPlan("judge", JudgeCandidate(SPEC, version=XCom("list")))
    with pytest.raises(
        PlanError,
        match=r"fraud\.train: task 'judge' reads version from 'list', which is not "
        r"upstream of it \(upstream: none\)",
    ):
        dag(LIST, judge)


def test_a_typo_in_an_xcom_source_names_the_known_upstream() -> None:
    judge = TaskPlan("judge", JudgeCandidate(SPEC, version=XCom("lsit")), ("list",))
    with pytest.raises(PlanError, match=r"reads version from 'lsit'.*\(upstream: list\)"):
        dag(LIST, judge)


def test_upstream_counts_transitively_and_a_mapped_source_is_an_upstream() -> None:
    validate = TaskPlan("validate", ValidateFiles(SPEC, "suite.json", keys=MapOver("list")))
    judge = TaskPlan("judge", JudgeCandidate(SPEC, version=XCom("list")), ("validate",))
    plan = dag(LIST, validate, judge)
    assert plan.task("validate").depends_on == ("list",)


def test_unknown_upstreams_and_duplicate_ids_are_plan_errors() -> None:
    with pytest.raises(PlanError, match="depends on 'nowhere', which is not a task listed before"):
        dag(TaskPlan("list", GroupLanded("b", "p/", 1, 1, 1), upstream=("nowhere",)))
    with pytest.raises(PlanError, match="task id 'list' is used twice"):
        dag(LIST, LIST)


def test_operator_arguments_carry_the_planned_spec_version_and_keep_xcoms_for_the_factory() -> None:
    args = ValidateFiles(SPEC, "suite.json", keys=MapOver("list"))
    assert args.operator_kwargs() == {
        "spec_path": "s.yaml",
        "spec_sha256": "ab" * 32,
        "suite_path": "suite.json",
    }  # the mapped argument is left to the factory's expand()
    judge = JudgeCandidate(SPEC, version=XCom("train"))
    assert judge.operator_kwargs() == {
        "spec_path": "s.yaml",
        "spec_sha256": "ab" * 32,
        "version": XCom("train"),  # the factory hands over the train task's output
    }
