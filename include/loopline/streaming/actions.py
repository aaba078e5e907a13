"""What can be done to a pipeline's consumers, each decided and recorded here: deploy, roll,
scale, stop, a challenger in shadow, and the monitor's pass.

Every caller (an Airflow operator, the CLI, a benchmark) gets the same decisions and leaves
the same record: which version may serve (a refusal is a ``refused`` record, written before
any topic or replica is touched), how many replicas run (`replicas_to_run`: the limits the
monitor scales within, so it never undoes a deploy at once), the scaling window a deploy
holds, and the streaming record of what happened. Each action returns its `Outcome`;
``outcome.failed`` says the caller should fail (a refusal, a rollback, an unhealthy replica).

`consumer_deployment` builds where the replicas run (local processes or a Kubernetes
StatefulSet) from the spec and the caller's connection values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHAMPION, ModelRegistry, RegistryError
from loopline.registry.judgements import check_servable
from loopline.runtime.files import write_atomically
from loopline.streaming.deployment import Deployment, Outcome, version_to_serve
from loopline.streaming.monitor import MonitorPass, monitor_once, scaling_limits, scaling_window
from loopline.streaming.scaling import replicas_to_run
from loopline.streaming.shadow import ShadowTarget, shadow_path, wanted_shadow
from loopline.streaming.topics import ensure_topics

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec
    from loopline.spec.sections import StreamingSpec
    from loopline.streaming.kubernetes import KubernetesApplier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connections:
    """What a deployment needs from outside the spec, as the caller's connections give it.
    The backend-specific values are asked for only by the backend that needs them: a
    Kubernetes deployment needs no S3 credentials here (its pods read a Secret), a local one
    no Kubernetes API."""

    bootstrap: str  # the brokers as this process reaches them
    session_timeout_ms: int | None = None  # the connection's, over the spec's
    s3_settings: Callable[[], str] | None = None  # S3 settings JSON for local replicas
    kubernetes: Callable[[], KubernetesApplier] | None = None  # the API, for the StatefulSet


def consumer_deployment(
    spec: PipelineSpec, spec_path: Path, connections: Connections, state: Path
) -> Deployment:
    """Where `spec`'s replicas run, as its ``streaming.backend`` says."""
    streaming = streaming_of(spec)
    if streaming.backend == "kubernetes":
        from loopline.streaming.kubernetes import KubernetesDeployment, consumer_image

        if connections.kubernetes is None:
            raise ValueError(f"{spec.name}: streaming.backend 'kubernetes' needs a Kubernetes API")
        image = consumer_image(spec, spec_path.name, connections.bootstrap)
        return KubernetesDeployment(spec, image, connections.kubernetes())
    from loopline.streaming.deployment import SlotDeployment
    from loopline.streaming.local_backend import LocalProcessBackend

    if connections.s3_settings is None:
        raise ValueError(f"{spec.name}: local replicas need S3 settings to read the registry")
    backend = LocalProcessBackend(
        spec.name,
        spec_path.resolve(),
        connections.bootstrap,
        state,
        connections.s3_settings(),
        streaming.consumer_group,
        streaming.static_membership,
        metrics=streaming.metrics_port != 0,
        session_timeout_ms=connections.session_timeout_ms,
    )
    return SlotDeployment(backend)


@dataclass
class Consumers:
    """One pipeline's consumers as the actions reach them."""

    spec: PipelineSpec
    open_deployment: Callable[[], Deployment]  # e.g. `consumer_deployment`, bound to its values
    bootstrap: str
    registry: ModelRegistry
    records: RecordStore
    state: Path  # the state folder (``runtime.files.state_dir()``): the scaling window is there

    @cached_property
    def deployment(self) -> Deployment:
        """Opened on first use: a refused version leaves no replica state behind."""
        return self.open_deployment()

    @property
    def streaming(self) -> StreamingSpec:
        return streaming_of(self.spec)


def deploy_consumers(
    consumers: Consumers,
    run: RunContext,
    model_version: str | int = CHAMPION,
    replicas: int | None = None,
) -> Outcome:
    """Run `replicas` replicas of `model_version`: started where none run, the running ones
    rolled one at a time; empty `replicas`: as many as run now, at least ``replicas.min``."""
    return _run_sized(consumers, run, "deploy", model_version, replicas)


def _run_sized(
    consumers: Consumers,
    run: RunContext,
    action: Literal["deploy", "scale"],
    model_version: str | int,
    replicas: int | None,
) -> Outcome:
    """Deploy or scale: the version checked (a refusal recorded before anything is
    touched), the topics created, the count sized by the one rule and held against the
    monitor's scale-in, the outcome recorded."""
    try:
        version = version_to_serve(consumers.registry, consumers.spec.name, model_version)
    except RegistryError as exc:
        return _refused(consumers, run, action, model_version, str(exc))
    steps = _topics(consumers)
    count = _size(consumers, replicas, steps)
    deployment = consumers.deployment
    outcome = (deployment.deploy if action == "deploy" else deployment.scale)(version, count)
    _hold(consumers, count)
    return _recorded(consumers, run, _prefixed(outcome, steps))


def roll_consumers(
    consumers: Consumers, run: RunContext, model_version: str | int = CHAMPION
) -> Outcome:
    """Move the running replicas to `model_version`, one at a time, keeping their count;
    refused when none run (there is nothing to roll: deploy starts them)."""
    try:
        version = version_to_serve(consumers.registry, consumers.spec.name, model_version)
    except RegistryError as exc:
        return _refused(consumers, run, "roll", model_version, str(exc))
    running = consumers.deployment.replica_count()
    if running == 0:
        nothing = f"no {consumers.spec.name} replica runs: nothing to roll (deploy starts them)"
        return _refused(consumers, run, "roll", model_version, nothing)
    outcome = consumers.deployment.deploy(version, running)
    return _recorded(consumers, run, dataclasses.replace(outcome, action="roll"))


def scale_consumers(
    consumers: Consumers,
    run: RunContext,
    replicas: int | None,
    model_version: str | int = CHAMPION,
) -> Outcome:
    """Run `replicas` replicas (empty: as many as run now, within the limits); new ones start
    on `model_version`, running ones keep theirs."""
    return _run_sized(consumers, run, "scale", model_version, replicas)


def stop_consumers(consumers: Consumers, run: RunContext) -> Outcome:
    """Stop every replica; each leaves the group after draining."""
    return _recorded(consumers, run, consumers.deployment.stop())


def shadow_consumers(
    consumers: Consumers, run: RunContext, model_version: int | None, share: float | None = None
) -> Outcome:
    """Have the replicas score a share of their live traffic with `model_version` in shadow
    (None: stop the shadow), for a shadow verdict (`loopline.promotion.shadow`). Only a
    version whose judgement passed and that is not the champion; the share is the spec's
    ``promotion.shadow.share`` unless given. Local replicas follow the pipeline's shadow file
    within a second; a Kubernetes deployment is refused (not yet). Asked again for the
    shadow they already follow, nothing changes ("no_change", recorded too)."""
    spec = consumers.spec
    if spec.streaming is not None and spec.streaming.backend == "kubernetes":
        why = "a shadow on Kubernetes replicas is not supported yet: use local replicas"
        return _refused(consumers, run, "shadow", str(model_version), why)
    path = shadow_path(consumers.state / "streaming", spec.name)
    if model_version is None:
        write_atomically(path, json.dumps({"version": None}).encode())
        # A subject of its own: a run that starts and stops a shadow (the shadow DAG, when a
        # verdict is final the run the shadow started) keeps both records.
        stopped = Outcome("shadow", "done", ["shadow stopped"])
        return _recorded(consumers, run, stopped, subject="shadow-stop")
    rules = spec.promotion.shadow
    share = share if share is not None else rules.share if rules is not None else 1.0
    try:
        servable = check_servable(consumers.registry, spec.name, model_version)
    except RegistryError as exc:
        return _refused(consumers, run, "shadow", model_version, str(exc))
    if servable == "champion":
        why = f"v{model_version} is the champion: a shadow is a challenger beside it"
        return _refused(consumers, run, "shadow", model_version, why)
    if wanted_shadow(path) == ShadowTarget(model_version, share):  # an hourly run, say
        step = f"the replicas already shadow v{model_version} on {share:.0%}"
        return _recorded(consumers, run, Outcome("shadow", "no_change", [step]),
                         model_version=model_version, share=share)  # fmt: skip
    write_atomically(path, json.dumps({"version": model_version, "share": share}).encode())
    step = f"v{model_version} in shadow on {share:.0%} of events and requests ({servable})"
    return _recorded(consumers, run, Outcome("shadow", "done", [step]),
                     model_version=model_version, share=share)  # fmt: skip


def monitor_consumers(consumers: Consumers, run: RunContext) -> MonitorPass | None:
    """One pass of the monitor (replace the dead, then scale on lag and latency), recorded:
    replacements, replicas dying on records, and the scaling decision ("no change" too).
    None when no replica runs: nothing to watch, nothing decided."""
    deployment, streaming = consumers.deployment, consumers.streaming
    if deployment.replica_count() == 0:
        return None
    champion = version_to_serve(consumers.registry, consumers.spec.name, CHAMPION)
    window = scaling_window(consumers.state, consumers.spec.name, streaming)
    seen = monitor_once(deployment, consumers.bootstrap, streaming, champion, window)
    if seen.replaced.verdict == "replaced":
        _recorded(consumers, run, seen.replaced)
    if seen.problems:  # dying on records shows here, not only as restarts in logs
        _write(consumers, run, "unhealthy", "health", reasons=seen.problems)
    decision = seen.decision
    _write(
        consumers,
        run,
        decision.action,
        "scaling",
        reasons=[*decision.reasons, *(seen.scaled.steps if seen.scaled else [])],
        numbers={**decision.numbers, "current": decision.current, "desired": decision.desired},
        payload=decision.to_dict(),
    )
    return seen


def streaming_of(spec: PipelineSpec) -> StreamingSpec:
    if spec.streaming is None:
        raise ValueError(f"{spec.name} has no streaming section")
    return spec.streaming


def _refused(
    consumers: Consumers, run: RunContext, action: str, model_version: str | int, why: str
) -> Outcome:
    """`action` not taken, recorded: a refusal is a decision like any other."""
    refused = Outcome(action, "refused", [why])
    return _recorded(consumers, run, refused, model_version=str(model_version))


def _topics(consumers: Consumers) -> list[str]:
    created = ensure_topics(consumers.bootstrap, [consumers.streaming])
    return [f"created topic {topic}" for topic in created]


def _size(consumers: Consumers, asked: int | None, steps: list[str]) -> int:
    """`replicas_to_run`, with a step saying why where it is not what was asked."""
    limits = scaling_limits(consumers.streaming)
    running = consumers.deployment.replica_count()
    count = replicas_to_run(asked, running, limits)
    if asked is not None and count != asked:
        steps.append(
            f"{asked} replica(s) asked, {count} run: replicas.min {limits.minimum} .. "
            f"{limits.cap} ({limits.describe_cap()})"
        )
    return count


def _hold(consumers: Consumers, count: int) -> None:
    """The monitor holds an asked-for count like its own scale-out (no scale-in before the
    stabilisation window has passed)."""
    window = scaling_window(consumers.state, consumers.spec.name, consumers.streaming)
    window.add(time.time(), count)


def _prefixed(outcome: Outcome, steps: list[str]) -> Outcome:
    return dataclasses.replace(outcome, steps=[*steps, *outcome.steps])


def _recorded(
    consumers: Consumers,
    run: RunContext,
    outcome: Outcome,
    subject: str | None = None,
    **payload: Any,
) -> Outcome:
    """The outcome's streaming record, under `subject` (default: its action)."""
    _write(
        consumers,
        run,
        outcome.verdict,
        subject or outcome.action,
        reasons=outcome.steps,
        numbers={"replicas": len(outcome.replicas)},
        payload={**outcome.to_dict(), **payload},
    )
    return outcome


def _write(
    consumers: Consumers, run: RunContext, verdict: str, subject: str, **fields: Any
) -> None:
    record = run.record(RecordStage.STREAMING, verdict, subject=subject, **fields)
    consumers.records.write(record)
    log.info("%s %s: %s", consumers.spec.name, subject, verdict)
