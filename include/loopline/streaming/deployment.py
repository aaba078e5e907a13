"""Deploying a pipeline's scoring replicas: deploy, roll, scale, stop, replace the dead.

A backend runs replicas in slots 0..n-1 (a slot is a replica's stable identity: its static
group member id, its heartbeat file, its StatefulSet ordinal); what it reports is each slot's
status from the replica's own heartbeat. These functions hold the policy, the same for every
backend:
- a replica is **healthy** when its process is alive and its heartbeat says ``running`` with
  the expected model version, fresh within ``STALE_SECONDS``: it loaded and compiled its model
  (TensorFlow alone takes seconds) and the group gave it partitions. Moving on before that
  restarts the group's rebalance under it (the local broker, Tansu, then kept the group in
  generation 0 for minutes: seen here). So there are never more replicas than partitions;
- **roll** moves one slot at a time to the new version and waits for it to be healthy before
  the next: switched in place where the backend can (the running replica loads it beside the
  old one and swaps between two batches, keeping its partitions: no rebalance, no stall),
  else a new replica. A slot that does not become healthy in time is put back on the old
  version, and the roll stops there (the others still run the old one): a bad version never
  takes the whole group down;
- **replace dead** restarts every slot that should run and does not (dynamic scaling).
Each returns what it did; ``loopline.streaming.actions`` records it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from loopline.registry import ModelRegistry

log = logging.getLogger(__name__)

STALE_SECONDS = 30.0  # a heartbeat older than this is a replica that stopped reporting
HEALTHY_TIMEOUT = 180.0


@dataclass(frozen=True)
class ReplicaStatus:
    slot: int
    alive: bool  # its process (or pod) runs
    state: str | None  # its heartbeat's: running, draining, stopped; None: no heartbeat yet
    model_version: int | None
    updated_at: float | None  # the heartbeat's time (epoch seconds)
    heartbeat: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0  # times its supervisor restarted it since it was started
    crash_looping: bool = False  # its last runs each died within a minute

    def problems(self) -> list[str]:
        """What is wrong with this replica beyond being dead: deaths on records (from its
        heartbeat, naming partition and offsets) and a crash loop (from its supervisor)."""
        found = [
            f"slot {self.slot}: a replica died holding {crash['topic']} partition "
            f"{crash['partition']} offsets {crash['first']}-{crash['last']}"
            for crash in self.heartbeat.get("crashes") or []
        ]
        if self.crash_looping:
            found.append(f"slot {self.slot}: crash-looping ({self.restarts} restarts)")
        return found

    def healthy(self, version: int | None = None, now: float | None = None) -> bool:
        fresh = (
            self.updated_at is not None and (now or time.time()) - self.updated_at < STALE_SECONDS
        )
        right = version is None or self.model_version == version
        return self.alive and self.state == "running" and fresh and right


class Backend(Protocol):
    """Where replicas run: local processes, or pods of a Kubernetes StatefulSet."""

    def start(self, slot: int, version: int) -> None: ...

    def stop(self, slot: int, retire: bool) -> None: ...

    def switch(self, slot: int, version: int) -> bool:
        """Have the slot's running replica serve `version` in place (no restart, so no
        rebalance); False where it cannot (no healthy replica there)."""
        ...

    def slots(self) -> list[int]:
        """The slots that should run (started and not stopped)."""
        ...

    def status(self, slot: int) -> ReplicaStatus: ...


@dataclass
class Outcome:
    """What a deployment action did: the record's payload and verdict."""

    action: str
    verdict: str  # done, no_change, replaced; refused, rolled_back, unhealthy (FAILED)
    steps: list[str] = field(default_factory=list)
    replicas: dict[int, int | None] = field(default_factory=dict)  # slot -> version

    @property
    def failed(self) -> bool:
        """Whether the action did not do what was asked (the task that asked fails)."""
        return self.verdict in FAILED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FAILED = frozenset({"refused", "rolled_back", "unhealthy"})


class Deployment(Protocol):
    """A pipeline's replicas wherever they run: what the actions and the monitor call.
    Chosen once per deployment (``streaming.backend``): slot by slot on a `Backend` with this
    module's policy (local processes), or a Kubernetes StatefulSet whose controller applies
    the same policy (``loopline.streaming.kubernetes``)."""

    def deploy(self, version: int, replicas: int) -> Outcome: ...

    def scale(self, version: int, replicas: int) -> Outcome: ...

    def stop(self) -> Outcome: ...

    def replace_dead(self, version: int) -> Outcome: ...

    def replica_count(self) -> int: ...

    def heartbeats(self) -> list[dict[str, Any]]:
        """The replicas' latest heartbeats (latency windows for the auto-scaler)."""
        ...

    def problems(self) -> list[str]:
        """Replicas that die on records or crash-loop, each named with where it dies."""
        ...


@dataclass
class SlotDeployment:
    """Replicas started, checked and stopped one slot at a time on `backend`."""

    backend: Backend
    timeout: float = HEALTHY_TIMEOUT

    def deploy(self, version: int, replicas: int) -> Outcome:
        return deploy(self.backend, version, replicas, self.timeout)

    def scale(self, version: int, replicas: int) -> Outcome:
        return scale(self.backend, version, replicas, self.timeout)

    def stop(self) -> Outcome:
        return stop_all(self.backend)

    def replace_dead(self, version: int) -> Outcome:
        return replace_dead(self.backend, version)

    def replica_count(self) -> int:
        return len(self.backend.slots())

    def heartbeats(self) -> list[dict[str, Any]]:
        beats = [self.backend.status(slot).heartbeat for slot in self.backend.slots()]
        return [beat for beat in beats if beat]

    def problems(self) -> list[str]:
        return [p for slot in self.backend.slots() for p in self.backend.status(slot).problems()]


def version_to_serve(registry: ModelRegistry, name: str, wanted: str | int = "champion") -> int:
    """The version a deploy or scale may start: "champion" (or empty) is the registry's
    champion; a number must be the champion or a version whose judgement passed. Anything
    else raises a RegistryError (NotServable) before a replica is touched: a challenger the
    gates refused, or any number typed into the form, would otherwise score live traffic."""
    from loopline.registry import CHAMPION, AliasNotSet, RegistryError
    from loopline.registry.judgements import check_servable

    text = str(wanted).strip() or CHAMPION
    if text == CHAMPION:
        try:
            return registry.resolve(name, CHAMPION)
        except AliasNotSet as exc:
            raise RegistryError(f"{name} has no champion to serve yet") from exc
    if not text.isdigit():
        raise RegistryError(f"model_version {text!r}: expected 'champion' or a version number")
    version = int(text)
    why = check_servable(registry, name, version)
    log.info("%s v%d may serve: %s", name, version, why)
    return version


def deploy(
    backend: Backend, version: int, replicas: int, timeout: float = HEALTHY_TIMEOUT
) -> Outcome:
    """`replicas` replicas of `version`: new slots started, running ones rolled if on another
    version, extra slots retired."""
    outcome = Outcome("deploy", "done")
    for slot in range(replicas):
        if slot not in backend.slots():
            backend.start(slot, version)
            outcome.steps.append(f"slot {slot}: started v{version}")
    _retire_above(backend, replicas, outcome)
    _wait_all(backend, range(replicas), version, timeout, outcome, started_only=True)
    rolled = roll(backend, version, timeout)
    outcome.steps += rolled.steps
    outcome.verdict = rolled.verdict if rolled.verdict == "rolled_back" else outcome.verdict
    outcome.replicas = _versions(backend)
    return outcome


def roll(backend: Backend, version: int, timeout: float = HEALTHY_TIMEOUT) -> Outcome:
    """Every slot to `version`, one at a time, each healthy before the next; a slot that does
    not become healthy goes back to its old version and the roll stops."""
    outcome = Outcome("roll", "done")
    for slot in sorted(backend.slots()):
        old = backend.status(slot)
        if old.healthy(version):
            continue
        in_place = _replace(backend, slot, version)
        how = "switched in place" if in_place else "restarted"
        if wait_healthy(backend, slot, version, timeout):
            outcome.steps.append(
                f"slot {slot}: v{old.model_version} -> v{version} ({how}), healthy"
            )
            continue
        outcome.steps.append(
            f"slot {slot}: v{version} not healthy within {timeout:.0f} s "
            f"({_describe(backend.status(slot))}); back to v{old.model_version}"
        )
        if old.model_version is not None:
            _replace(backend, slot, old.model_version, in_place)
            wait_healthy(backend, slot, old.model_version, timeout)
        outcome.verdict = "rolled_back"
        break
    if not outcome.steps:
        outcome.verdict = "no_change"
        outcome.steps.append(f"every replica already runs v{version}")
    outcome.replicas = _versions(backend)
    return outcome


def _replace(backend: Backend, slot: int, version: int, in_place: bool = True) -> bool:
    """Put `version` on `slot`: switched in the running replica where it can be (it keeps
    its partitions), else a new replica. Returns whether it was switched in place."""
    if in_place and backend.switch(slot, version):
        return True
    # Leave the group (not only stop): the other replicas take the slot's partitions at once
    # and the new version joins after. Crash restarts (replace_dead) keep a static id.
    backend.stop(slot, retire=True)
    backend.start(slot, version)
    return False


def scale(
    backend: Backend, version: int, replicas: int, timeout: float = HEALTHY_TIMEOUT
) -> Outcome:
    """Run exactly `replicas` replicas (new ones on `version`)."""
    outcome = Outcome("scale", "done")
    running = sorted(backend.slots())
    for slot in range(replicas):
        if slot not in running:
            backend.start(slot, version)
            outcome.steps.append(f"slot {slot}: started v{version}")
    _retire_above(backend, replicas, outcome)
    _wait_all(backend, range(replicas), None, timeout, outcome, started_only=True)
    if not outcome.steps:
        outcome.verdict = "no_change"
        outcome.steps.append(f"{replicas} replica(s) already")
    outcome.replicas = _versions(backend)
    return outcome


def stop_all(backend: Backend) -> Outcome:
    outcome = Outcome("stop", "done")
    for slot in sorted(backend.slots(), reverse=True):
        backend.stop(slot, retire=True)
        outcome.steps.append(f"slot {slot}: stopped")
    return outcome


def replace_dead(backend: Backend, version: int) -> Outcome:
    """Restart every slot that should run but whose process is gone (or stopped reporting)."""
    outcome = Outcome("replace_dead", "no_change")
    for slot in sorted(backend.slots()):
        status = backend.status(slot)
        if status.alive and not _stale(status):
            continue
        restart_version = status.model_version or version
        backend.stop(slot, retire=False)
        backend.start(slot, restart_version)
        outcome.steps.append(f"slot {slot}: {_describe(status)}; restarted on v{restart_version}")
        outcome.verdict = "replaced"
    outcome.replicas = _versions(backend)
    return outcome


def wait_healthy(backend: Backend, slot: int, version: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(slot)
        if status.healthy(version):
            return True
        if not status.alive or status.restarts:
            return False  # it started and died: no point waiting
        failed = status.heartbeat.get("switch_failed") or {}
        if version is not None and failed.get("version") == version:
            return False  # the running replica could not load it
        time.sleep(0.5)
    return False


def _wait_all(
    backend: Backend,
    slots: range,
    version: int | None,
    timeout: float,
    outcome: Outcome,
    started_only: bool,
) -> None:
    for slot in slots:
        if started_only and not any(
            step.startswith(f"slot {slot}: started") for step in outcome.steps
        ):
            continue
        if not wait_healthy(backend, slot, version, timeout):
            outcome.verdict = "unhealthy"
            outcome.steps.append(f"slot {slot}: not healthy within {timeout:.0f} s")


def _retire_above(backend: Backend, replicas: int, outcome: Outcome) -> None:
    for slot in sorted(backend.slots(), reverse=True):
        if slot >= replicas:
            backend.stop(slot, retire=True)  # leaves the group: its partitions move now
            outcome.steps.append(f"slot {slot}: retired")


def _versions(backend: Backend) -> dict[int, int | None]:
    return {slot: backend.status(slot).model_version for slot in sorted(backend.slots())}


def _stale(status: ReplicaStatus) -> bool:
    return status.updated_at is not None and time.time() - status.updated_at > STALE_SECONDS


def _describe(status: ReplicaStatus) -> str:
    alive = "alive" if status.alive else "dead"
    return f"{alive}, heartbeat {status.state or 'none'}, v{status.model_version}"
