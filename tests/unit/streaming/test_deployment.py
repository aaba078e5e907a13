"""The deployment policy on a backend whose replicas are plain records: roll one slot at a
time and roll back a version that never becomes healthy, replace the dead, scale and retire."""

from __future__ import annotations

import time

import pytest
from loopline.streaming.deployment import (
    ReplicaStatus,
    deploy,
    replace_dead,
    roll,
    scale,
    stop_all,
    version_to_serve,
)


class FakeBackend:
    """Replicas that report healthy at once, except on versions in `broken`."""

    def __init__(self, broken: frozenset[int] = frozenset()) -> None:
        self.running: dict[int, int] = {}
        self.dead: set[int] = set()
        self.broken = broken
        self.log: list[str] = []
        self.retired: list[int] = []

    def start(self, slot: int, version: int) -> None:
        self.running[slot] = version
        self.dead.discard(slot)
        self.log.append(f"start {slot} v{version}")

    def stop(self, slot: int, retire: bool) -> None:
        self.log.append(f"stop {slot}" + (" (leave)" if retire else ""))
        if retire:
            self.running.pop(slot, None)
            self.retired.append(slot)

    def switch(self, slot: int, version: int) -> bool:
        return False  # these replicas only restart (see InPlaceBackend)

    def slots(self) -> list[int]:
        return sorted(self.running)

    def status(self, slot: int) -> ReplicaStatus:
        version = self.running.get(slot)
        alive = slot in self.running and slot not in self.dead
        state = None if version in self.broken else "running"
        return ReplicaStatus(
            slot, alive and version not in self.broken, state, version, time.time()
        )


def test_deploy_starts_the_replicas_and_a_second_deploy_rolls_them() -> None:
    backend = FakeBackend()
    first = deploy(backend, 1, replicas=3, timeout=1)
    assert first.verdict == "done" and first.replicas == {0: 1, 1: 1, 2: 1}

    second = deploy(backend, 2, replicas=3, timeout=1)
    assert second.replicas == {0: 2, 1: 2, 2: 2}
    # One slot at a time: each stopped then started before the next is touched.
    rolls = [entry for entry in backend.log[3:]]
    assert rolls == [
        "stop 0 (leave)",
        "start 0 v2",
        "stop 1 (leave)",
        "start 1 v2",
        "stop 2 (leave)",
        "start 2 v2",
    ]


def test_a_version_that_never_becomes_healthy_is_rolled_back_on_its_first_slot() -> None:
    backend = FakeBackend(broken=frozenset({9}))
    deploy(backend, 1, replicas=2, timeout=1)

    outcome = roll(backend, 9, timeout=1)

    assert outcome.verdict == "rolled_back"
    assert outcome.replicas == {0: 1, 1: 1}  # slot 1 never touched, slot 0 back on v1
    assert "slot 0: v9 not healthy within 1 s" in outcome.steps[0]


def test_rolling_to_the_running_version_changes_nothing() -> None:
    backend = FakeBackend()
    deploy(backend, 4, replicas=2, timeout=1)
    outcome = roll(backend, 4, timeout=1)
    assert outcome.verdict == "no_change" and outcome.steps == ["every replica already runs v4"]


def test_dead_replicas_are_restarted_on_their_version() -> None:
    backend = FakeBackend()
    deploy(backend, 3, replicas=3, timeout=1)
    backend.dead.add(1)

    outcome = replace_dead(backend, version=5)

    assert outcome.verdict == "replaced" and outcome.replicas == {0: 3, 1: 3, 2: 3}
    assert outcome.steps == ["slot 1: dead, heartbeat running, v3; restarted on v3"]
    assert replace_dead(backend, version=5).verdict == "no_change"


def test_scale_in_retires_the_highest_slots_and_stop_retires_all() -> None:
    backend = FakeBackend()
    deploy(backend, 1, replicas=4, timeout=1)
    outcome = scale(backend, 1, replicas=2, timeout=1)
    assert backend.retired[-2:] == [3, 2] and outcome.replicas == {0: 1, 1: 1}
    assert scale(backend, 1, replicas=2, timeout=1).verdict == "no_change"
    stop_all(backend)
    assert backend.slots() == []


class InPlaceBackend(FakeBackend):
    """Replicas that switch versions in place; a version in `broken` fails to load and the
    replica keeps serving its old one."""

    def __init__(self, broken: frozenset[int] = frozenset()) -> None:
        super().__init__(broken)
        self.failed: dict[int, int] = {}

    def switch(self, slot: int, version: int) -> bool:
        self.log.append(f"switch {slot} v{version}")
        if version in self.broken:
            self.failed[slot] = version
        else:
            self.running[slot] = version
        return True

    def status(self, slot: int) -> ReplicaStatus:
        failed = self.failed.get(slot)
        beat = {"switch_failed": {"version": failed, "error": "no such version"}} if failed else {}
        version = self.running.get(slot)
        return ReplicaStatus(slot, slot in self.running, "running", version, time.time(), beat)


def test_a_roll_switches_each_replica_in_place_and_switches_back_a_version_that_fails() -> None:
    backend = InPlaceBackend(broken=frozenset({3}))
    deploy(backend, 1, replicas=2, timeout=1)

    rolled = roll(backend, 2, timeout=1)
    assert rolled.verdict == "done" and rolled.replicas == {0: 2, 1: 2}
    assert backend.log[2:] == ["switch 0 v2", "switch 1 v2"]  # no stop, no start: no rebalance
    assert "switched in place" in rolled.steps[0]

    started = time.monotonic()
    broken = roll(backend, 3, timeout=30)
    assert time.monotonic() - started < 5  # the failed load is seen at once, not after 30 s
    assert broken.verdict == "rolled_back" and broken.replicas == {0: 2, 1: 2}
    assert backend.log[4:] == ["switch 0 v3", "switch 0 v2"]  # slot 1 never touched


def test_scaling_out_waits_for_new_replicas_on_any_version() -> None:
    """`scale` waits for "healthy on any version" (None): that must not read as a failed
    switch to version None."""
    backend = InPlaceBackend()
    deploy(backend, 1, replicas=1, timeout=1)
    assert scale(backend, 1, 3, timeout=1).verdict == "done"


# -- which version may serve: the champion, or one whose judgement passed ----------------


@pytest.fixture
def judged(s3, tmp_path):
    """On the real S3 server: v1 champion; v2 judged better (not promoted: say, approval
    pending); v3 refused by the gates and made challenger; v4 registered, never judged."""
    from judged_versions import crown, empty_registry, judge_as, register

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
    from judged_versions import judge_as
    from loopline.registry.judgements import NotServable

    judge_as(judged, 2, auc=0.80, run_id="r2-again")  # judged again: now refused

    with pytest.raises(NotServable, match="run r2-again refused it"):
        version_to_serve(judged, "card_fraud", "2")


def test_without_a_champion_there_is_nothing_to_serve(s3) -> None:
    from judged_versions import empty_registry
    from loopline.registry import RegistryError

    with pytest.raises(RegistryError, match="card_fraud has no champion to serve yet"):
        version_to_serve(empty_registry(s3), "card_fraud", "champion")
