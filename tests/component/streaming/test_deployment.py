"""Which version may serve, read from a real registry on the real S3 server: the champion, or
a version whose judgement passed; any other is refused before a replica starts. The deployment
policy itself is unit-tested (tests/unit/streaming/test_deployment.py)."""

from __future__ import annotations

import pytest
from loopline.streaming.deployment import (
    deploy,
    version_to_serve,
)
from support.fake_replicas import FakeBackend

# -- which version may serve: the champion, or one whose judgement passed ----------------


@pytest.fixture
def judged(s3, tmp_path):
    """On the real S3 server: v1 champion; v2 judged better (not promoted: say, approval
    pending); v3 refused by the gates and made challenger; v4 registered, never judged."""
    from support.judged_versions import crown, empty_registry, judge_as, register

    registry = empty_registry(s3)
    v1, v2, v3, _never_judged = (register(registry, tmp_path) for _ in range(4))
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    judge_as(registry, v2, auc=0.95, run_id="r2")
    judge_as(registry, v3, auc=0.80, run_id="r3")
    registry.move_alias(
        "card_fraud", "challenger", v3, expected=None, action="set", reason="refused", by="t"
    )
    return registry


def test_the_champion_and_a_version_that_passed_its_judgement_may_serve(judged) -> None:
    assert version_to_serve(judged, "card_fraud", "champion") == 1
    assert version_to_serve(judged, "card_fraud", "") == 1
    assert version_to_serve(judged, "card_fraud", "1") == 1
    assert version_to_serve(judged, "card_fraud", "2") == 2


@pytest.mark.parametrize(
    ("wanted", "error"),
    [
        ("3", r"v3 may not serve: its judgement in run r3 refused it \(auc improvement: 0\.8"),
        ("4", r"v4 may not serve: it is not the champion \(v1\) and has no judgement record"),
        ("9", r"card_fraud has no version 9"),
        ("v2", r"expected 'champion' or a version number"),
    ],
    ids=["refused-challenger", "never-judged", "missing", "not-a-number"],
)
def test_any_other_version_is_refused_before_a_replica_starts(judged, wanted, error) -> None:
    from loopline.registry import RegistryError

    backend = FakeBackend()
    with pytest.raises(RegistryError, match=error):
        deploy(backend, version_to_serve(judged, "card_fraud", wanted), replicas=2, timeout=1)
    assert backend.log == []


def test_a_later_refusal_outweighs_an_earlier_pass(judged) -> None:
    from loopline.registry.judgements import NotServable
    from support.judged_versions import judge_as

    judge_as(judged, 2, auc=0.80, run_id="r2-again")  # judged again: now refused

    with pytest.raises(NotServable, match="run r2-again refused it"):
        version_to_serve(judged, "card_fraud", "2")


def test_without_a_champion_there_is_nothing_to_serve(s3) -> None:
    from loopline.registry import RegistryError
    from support.judged_versions import empty_registry

    with pytest.raises(RegistryError, match="card_fraud has no champion to serve yet"):
        version_to_serve(empty_registry(s3), "card_fraud", "champion")
