"""What the specs name, judged from what was found: suites, topics, champions."""

from __future__ import annotations

from pathlib import Path

from loopline.doctor.results import Status
from loopline.doctor.specs import check_bucket, check_champion, check_suite, check_topics
from loopline.plan.paths import ProjectPaths
from loopline.spec import load_spec
from support.paths import PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
TOPICS = {"card_fraud.transactions", "card_fraud.scores", "card_fraud.transactions.dead-letter"}


def test_a_missing_suite_file_is_a_problem_naming_the_file_and_suite_profile(
    tmp_path: Path,
) -> None:
    paths = ProjectPaths(tmp_path / "pipelines", tmp_path / "expectations")
    missing = check_suite(SPEC, paths.suite_file(SPEC))
    assert missing.status is Status.PROBLEM
    assert str(tmp_path / "expectations" / "card_fraud.json") in missing.detail
    assert missing.fix.startswith("loopline suite profile card_fraud ")
    (tmp_path / "expectations").mkdir()
    (tmp_path / "expectations" / "card_fraud.json").write_text("{}")
    assert check_suite(SPEC, paths.suite_file(SPEC)).status is Status.OK


def test_each_missing_topic_is_named() -> None:
    found = check_topics(SPEC, TOPICS - {"card_fraud.scores"})
    assert found is not None and found.status is Status.PROBLEM
    assert found.detail.startswith("missing on the broker: card_fraud.scores (of ")
    assert "trigger card_fraud.stream_deploy" in found.fix
    ok = check_topics(SPEC, TOPICS)
    assert ok is not None and ok.status is Status.OK
    no_broker = check_topics(SPEC, None)
    assert no_broker is not None and no_broker.status is Status.SKIPPED


def test_no_streaming_section_means_no_topic_check() -> None:
    assert check_topics(SPEC.model_copy(update={"streaming": None}), TOPICS) is None


def test_no_champion_is_a_problem_whose_fix_is_to_train() -> None:
    result = check_champion(SPEC, None)
    assert result.status is Status.PROBLEM
    assert result.fix.startswith("trigger card_fraud.train")
    assert check_champion(SPEC, 3).detail == "version 3"


def test_a_missing_bucket_names_the_fix_for_the_stack_and_for_aws() -> None:
    local = check_bucket(SPEC, (False, "missing"), local=True)
    assert local.status is Status.PROBLEM and local.fix.startswith("make run")
    aws = check_bucket(SPEC, (False, "missing"), local=False)
    assert aws.fix.startswith(f"aws s3 mb s3://{SPEC.data.bucket}")
    assert check_bucket(SPEC, (None, "HEAD answered 403"), local=True).status is Status.SKIPPED
