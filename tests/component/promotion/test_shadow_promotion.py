"""A challenger judged on live traffic before it is promoted, on the real S3 server: with
``promotion.shadow`` a candidate that passes the offline gate waits as challenger, the shadow
action is decided and recorded (refusing the champion and unjudged versions), the verdict is
computed from the prediction log its real writer wrote and recorded, `models show` prints it,
and a promotion passes only on a passing verdict against this champion."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import numpy as np
import pytest
from loopline.commands.models import run_models_command
from loopline.data.prediction_log import log_prefix
from loopline.promotion.judge import apply_judgement
from loopline.promotion.manual import PromotionRefused, promote_manually
from loopline.promotion.shadow import judge_shadow, latest_shadow_verdict, record_shadow_verdict
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHALLENGER, CHAMPION
from loopline.spec.sections import ShadowSpec
from loopline.streaming.actions import Consumers, shadow_consumers
from loopline.streaming.shadow import shadow_path, wanted_shadow
from support.judged_versions import SPEC, crown, empty_registry, judge_as, register
from support.shadow_traffic import shadow_log as write_shadow_log

SHADOWED = SPEC.model_copy(
    update={"promotion": SPEC.promotion.model_copy(update={"shadow": ShadowSpec(min_pairs=200)})}
)
ME = "cli:tester@host"


@pytest.fixture
def world(s3, tmp_path):
    """v1 champion; v2 judged passing by the train DAG's rules under promotion.shadow."""
    registry = empty_registry(s3)
    v1 = register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="r1", spec=SHADOWED)
    crown(registry, v1)
    v2 = register(registry, tmp_path)
    judgement = judge_as(registry, v2, auc=0.95, run_id="r2", spec=SHADOWED)
    run = RunContext(SHADOWED.name, "r2", dag_id=f"{SHADOWED.name}.train", task_id="promote")
    move = apply_judgement(registry, SHADOWED, judgement, run)
    return registry, move, tmp_path


def shadow_log(registry, theirs: np.ndarray) -> None:
    write_shadow_log(registry.store, SHADOWED, theirs)


def verdict_of(registry, days=None):
    today = datetime.now(UTC).date()
    verdict = judge_shadow(registry.store, SHADOWED, 2, 1, days or [today])
    run = RunContext(SHADOWED.name, f"shadow-{verdict.verdict}")
    record_shadow_verdict(registry.store, SHADOWED.data.bucket, verdict, run)
    return verdict


def test_a_passing_candidate_waits_as_challenger_and_a_passing_shadow_verdict_promotes(
    world, capsys
) -> None:
    registry, move, _ = world
    assert registry.alias(SHADOWED.name, CHAMPION) == 1  # not promoted by the offline gate
    assert registry.alias(SHADOWED.name, CHALLENGER) == 2
    assert "waits as challenger for a passing shadow verdict" in move.reason
    with pytest.raises(PromotionRefused) as refused:
        promote_manually(registry, SHADOWED, 2, actor=ME)
    [check] = refused.value.failed
    assert check.name == "shadow verdict" and "no shadow verdict" in check.detail

    shadow_log(registry, np.linspace(0.0, 1.0, 300, dtype=np.float32)[::-1])  # all flipped
    failing = verdict_of(registry)
    assert failing.verdict == "fail" and failing.pairs == 300
    with pytest.raises(PromotionRefused) as refused:
        promote_manually(registry, SHADOWED, 2, actor=ME)
    assert "fail against v1" in refused.value.failed[0].detail

    registry.store.delete_prefix(SHADOWED.data.bucket, log_prefix(SHADOWED))
    shadow_log(registry, np.linspace(0.0, 1.0, 300, dtype=np.float32) + 0.001)
    passing = verdict_of(registry)
    assert passing.verdict == "pass", passing.reasons
    newest = latest_shadow_verdict(registry.store, SHADOWED, 2)
    assert newest.verdict == "pass" and newest.numbers["pairs"] == 300
    promoted, _ = promote_manually(registry, SHADOWED, 2, actor=ME)
    assert promoted.version == 2 and registry.alias(SHADOWED.name, CHAMPION) == 2

    # `loopline models show` prints the verdict beside the version
    args = argparse.Namespace(action="show", version="2")
    capsys.readouterr()
    assert run_models_command(args, SHADOWED, registry.store) == 0
    assert "shadow verdict (v2): pass against v1" in capsys.readouterr().out


def test_the_shadow_action_is_decided_and_recorded(world) -> None:
    registry, _, tmp_path = world
    records = RecordStore(registry.store, SHADOWED.data.bucket)

    def unused():
        raise AssertionError("a shadow needs no deployment handle")

    consumers = Consumers(SHADOWED, unused, "127.0.0.1:1", registry, records, tmp_path)
    runs = iter(RunContext(SHADOWED.name, f"cli-shadow-{n}") for n in range(6))
    assert shadow_consumers(consumers, next(runs), 1).verdict == "refused"  # the champion
    v3 = register(registry, tmp_path)
    refused = shadow_consumers(consumers, next(runs), v3)
    assert refused.verdict == "refused" and "no judgement record" in refused.steps[0]
    done = shadow_consumers(consumers, next(runs), 2, share=0.25)
    assert done.verdict == "done" and "25% of events" in done.steps[0]
    wanted = wanted_shadow(shadow_path(tmp_path / "streaming", SHADOWED.name))
    assert wanted is not None and (wanted.version, wanted.share) == (2, 0.25)
    again = shadow_consumers(consumers, next(runs), 2, share=0.25)  # the next hourly run
    assert again.verdict == "no_change" and "already shadow v2 on 25%" in again.steps[0]
    assert shadow_consumers(consumers, next(runs), 2, share=0.5).verdict == "done"  # a new share
    assert shadow_consumers(consumers, next(runs), None).verdict == "done"
    assert wanted_shadow(shadow_path(tmp_path / "streaming", SHADOWED.name)) is None
    verdicts = [r.verdict for r in records.records(SHADOWED.name, RecordStage.STREAMING)]
    assert verdicts == ["refused", "refused", "done", "no_change", "done", "done"]
