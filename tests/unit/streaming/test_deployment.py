"""The deployment policy on a backend whose replicas are plain records: roll one slot at a
time and roll back a version that never becomes healthy, replace the dead, scale and retire.
Which version may serve is read from a real registry: tests/component/streaming/."""

from __future__ import annotations

import time

from loopline.streaming.deployment import (
    ReplicaStatus,
    deploy,
    replace_dead,
    roll,
    scale,
    stop_all,
)
from support.fake_replicas import FakeBackend


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
