"""Replica backends whose replicas are plain records, for the deployment policy's tests."""

from __future__ import annotations

import time

from loopline.streaming.deployment import ReplicaStatus


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
