"""A manual promotion is held to the train DAG's rules, on a registry on the real S3 server:
refused with the failed checks, or forced with a reason that the promotion record keeps."""

from __future__ import annotations

import os
import pwd
import socket

import pytest
from loopline.promotion.manual import PromotionRefused, cli_actor, promote_manually
from loopline.records import RecordStage, RecordStore
from loopline.registry import CHAMPION, RegistryError
from support.judged_versions import SPEC, crown, empty_registry, judge_as, register

ME = "cli:tester@host"


@pytest.fixture
def registry(s3):
    return empty_registry(s3)


@pytest.fixture
def champion_v1(registry, tmp_path):
    """v1 judged (the first model, above the thresholds) and promoted by the train DAG."""
    v1 = register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    return registry


def refusal(registry, version: int) -> PromotionRefused:
    with pytest.raises(PromotionRefused) as caught:
        promote_manually(registry, SPEC, version, actor=ME)
    assert registry.alias(SPEC.name, CHAMPION) != version
    return caught.value


def failed(refused: PromotionRefused) -> list[str]:
    return [check.name for check in refused.failed]


def test_a_version_never_judged_is_refused(champion_v1, tmp_path) -> None:
    v2 = register(champion_v1, tmp_path)

    refused = refusal(champion_v1, v2)

    assert failed(refused) == ["judged", "against this champion"]
    assert "judged: no judgement record" in str(refused)
    promotions = RecordStore(champion_v1.store, SPEC.data.bucket).records(
        SPEC.name, RecordStage.PROMOTION
    )
    assert list(promotions) == []  # a refusal moves and records nothing


def test_a_version_the_gates_refused_is_refused_with_the_gates_reasons(
    champion_v1, tmp_path
) -> None:
    v2 = register(champion_v1, tmp_path)
    judge_as(champion_v1, v2, auc=0.80, run_id="r2")  # worse than the champion's 0.90

    refused = refusal(champion_v1, v2)

    assert failed(refused) == ["judged"]
    assert "refused in run r2: auc improvement: 0.8000 vs champion 0.9000" in str(refused)


def test_a_pass_against_an_earlier_champion_is_refused(champion_v1, tmp_path) -> None:
    v2, v3 = register(champion_v1, tmp_path), register(champion_v1, tmp_path)
    judge_as(champion_v1, v2, auc=0.95, run_id="r2")  # beat v1...
    judge_as(champion_v1, v3, auc=0.95, run_id="r3")
    crown(champion_v1, v3)  # ...but v3 is champion now, and v2 was never measured against it

    refused = refusal(champion_v1, v2)

    assert failed(refused) == ["against this champion"]
    assert "judged against v1, champion is v3" in str(refused)


def test_a_version_the_champion_was_rolled_back_from_is_refused(champion_v1, tmp_path) -> None:
    v2 = register(champion_v1, tmp_path)
    judge_as(champion_v1, v2, auc=0.95, run_id="r2")
    crown(champion_v1, v2)
    champion_v1.rollback(SPEC.name, reason="scores look wrong", by="airflow:rollback")

    refused = refusal(champion_v1, v2)

    assert failed(refused) == ["not rolled back"]
    assert "by airflow:rollback: scores look wrong" in str(refused)


def test_a_spec_that_requires_approval_refuses_the_terminal(champion_v1, tmp_path) -> None:
    v2 = register(champion_v1, tmp_path)
    judge_as(champion_v1, v2, auc=0.95, run_id="r2")
    rules = SPEC.promotion.model_copy(update={"require_approval": True})
    spec = SPEC.model_copy(update={"promotion": rules})

    with pytest.raises(PromotionRefused, match="approve in the Airflow UI"):
        promote_manually(champion_v1, spec, v2, actor=ME)
    assert champion_v1.alias(SPEC.name, CHAMPION) == 1


def test_a_passing_judgement_against_this_champion_promotes_and_is_recorded(
    champion_v1, tmp_path
) -> None:
    v2 = register(champion_v1, tmp_path)
    judge_as(champion_v1, v2, auc=0.95, run_id="r2")

    move, record = promote_manually(champion_v1, SPEC, v2, actor=ME, reason="ship it")

    assert champion_v1.alias(SPEC.name, CHAMPION) == v2
    assert (move.by, move.reason, move.previous) == (ME, "manual: ship it", 1)
    stored = RecordStore(champion_v1.store, SPEC.data.bucket).read(
        SPEC.name, RecordStage.PROMOTION, record.run_id, subject=f"v{v2}"
    )
    assert stored.verdict == "champion"
    assert (stored.payload["forced"], stored.payload["by"]) == (False, ME)


def test_force_with_a_reason_overrides_and_the_record_says_so(champion_v1, tmp_path) -> None:
    v2 = register(champion_v1, tmp_path)
    judge_as(champion_v1, v2, auc=0.80, run_id="r2")

    move, record = promote_manually(
        champion_v1, SPEC, v2, actor=ME, reason="v1 leaks PII", force=True
    )

    assert champion_v1.alias(SPEC.name, CHAMPION) == v2
    assert move.reason == "forced: v1 leaks PII (failed: judged)"
    stored = RecordStore(champion_v1.store, SPEC.data.bucket).read(
        SPEC.name, RecordStage.PROMOTION, record.run_id, subject=f"v{v2}"
    )
    assert stored.verdict == "forced"
    assert stored.payload["forced"] is True and stored.payload["reason"] == "v1 leaks PII"
    assert stored.payload["by"] == ME
    assert [c["name"] for c in stored.payload["failed_checks"]] == ["judged"]
    assert any(reason.startswith("judged: refused in run r2") for reason in stored.reasons)


def test_force_without_a_reason_moves_nothing(champion_v1, tmp_path) -> None:
    v2 = register(champion_v1, tmp_path)

    with pytest.raises(RegistryError, match="--force needs --reason"):
        promote_manually(champion_v1, SPEC, v2, actor=ME, reason=" ", force=True)
    assert champion_v1.alias(SPEC.name, CHAMPION) == 1


def test_the_champion_or_a_missing_version_is_an_error_not_a_move(champion_v1) -> None:
    with pytest.raises(RegistryError, match="v1 is already champion"):
        promote_manually(champion_v1, SPEC, 1, actor=ME)
    with pytest.raises(RegistryError, match="has no version 7"):
        promote_manually(champion_v1, SPEC, 7, actor=ME, reason="x", force=True)
    assert len(champion_v1.history(SPEC.name, CHAMPION)) == 1


def test_the_actor_is_the_real_uids_user_whatever_the_environment_says(monkeypatch) -> None:
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "mallory")

    actor = cli_actor()

    assert actor == f"cli:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
    assert "mallory" not in actor
