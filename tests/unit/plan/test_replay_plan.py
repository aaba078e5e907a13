"""The replay DAG's plan: a manual DAG whose form picks quarantine or dead letters; the
quarantine task emits the landing event the validate DAG runs on."""

from __future__ import annotations

import pytest
from loopline.plan import ProjectPaths, TaskKind, plan_pipeline
from loopline.plan.replay import DeadLetterArguments, ReplayParams
from loopline.spec import load_spec
from pydantic import ValidationError
from support.paths import PIPELINES

PATHS = ProjectPaths.beside(PIPELINES)
SPEC = load_spec(PIPELINES / "card_fraud.yaml")


def replay_plan(spec=SPEC):
    return next(plan for plan in plan_pipeline(spec, PATHS) if plan.stage == "replay")


def test_a_manual_dag_branching_to_each_replay() -> None:
    plan = replay_plan()
    assert plan.dag_id == "card_fraud.replay" and plan.schedule is None
    choose = plan.task("choose")
    assert choose.kind is TaskKind.CHOOSE_REPLAY
    assert dict(choose.args.branches) == {
        "quarantine": "replay_quarantined",
        "dead_letters": "replay_dead_letters",
    }
    quarantined = plan.task("replay_quarantined")
    # Its event is the one the validate DAG is scheduled on: requeued files get validated.
    [validate] = [p for p in plan_pipeline(SPEC, PATHS) if p.stage == "validate"]
    assert quarantined.outlets == validate.schedule_assets
    assert plan.task("replay_dead_letters").kind is TaskKind.REPLAY_DEAD_LETTERS


def test_the_form_is_typed_and_bounded() -> None:
    params = {p.name: p for p in replay_plan().params}
    assert list(params) == ["what", "objects", "max_events", "force"]
    assert params["what"].schema["enum"] == ["quarantine", "dead_letters"]
    assert params["objects"].schema["type"] == "array" and params["objects"].default == []
    assert params["max_events"].schema["maximum"] == 100_000
    assert ReplayParams().what == "quarantine"
    with pytest.raises(ValidationError, match="max_events"):
        DeadLetterArguments(max_events=0)


def test_a_pipeline_without_streaming_replays_only_quarantine() -> None:
    plan = replay_plan(SPEC.model_copy(update={"streaming": None}))
    assert [task.task_id for task in plan.tasks] == ["choose", "replay_quarantined"]
