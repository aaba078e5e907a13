"""``loopline stream deploy|roll|scale|stop|status|shadow <pipeline>``: a pipeline's consumers
from a terminal, through the same library actions as the stream_deploy DAG's operators.

Each action is decided and recorded by `loopline.streaming.actions` (a refused version, the
replica count within the spec's limits, the scaling window a deploy holds), so a deploy from
here leaves the same streaming record as one from Airflow, with ``cli:<user>@<host>`` as its
run. Local replicas are processes under the state folder the stack's Airflow uses, so a
command here sees and stops the replicas a DAG started, and the other way round.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module to build its parser: these load on use
    from loopline.records import RunContext
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore
    from loopline.streaming.actions import Consumers

ACTIONS = ("deploy", "roll", "scale", "stop", "status", "shadow")


def cli_run(spec: PipelineSpec, action: str) -> RunContext:
    """The run a command's records carry: who ran it, when, and a suffix to tell two apart."""
    from loopline.promotion.manual import cli_actor
    from loopline.records import RunContext

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return RunContext(spec.name, f"{cli_actor()}/{action}__{stamp}_{uuid.uuid4().hex[:6]}")


def open_consumers(
    spec: PipelineSpec,
    spec_path: Path,
    store: ObjectStore,
    bootstrap: str,
    s3_settings_json: str,
    state: Path,
) -> Consumers:
    """`spec`'s consumers as a terminal reaches them: local replicas get `s3_settings_json`
    to read the registry; a Kubernetes backend is the DAG's (it holds the cluster's
    connection), refused here naming that way."""
    from loopline.records import RecordStore
    from loopline.registry import ModelRegistry
    from loopline.streaming.actions import Connections, Consumers, consumer_deployment

    if spec.streaming is None:
        raise SystemExit(f"{spec.name} has no streaming section: it has no consumers")
    if spec.streaming.backend == "kubernetes":
        raise SystemExit(
            f"{spec.name}: streaming.backend is kubernetes; deploy it with the "
            f"{spec.name}.stream_deploy DAG, whose Kubernetes connection reaches the cluster"
        )
    connections = Connections(bootstrap=bootstrap, s3_settings=lambda: s3_settings_json)
    return Consumers(
        spec,
        partial(consumer_deployment, spec, spec_path, connections, state),
        bootstrap,
        ModelRegistry(store, spec.data.bucket),
        RecordStore(store, spec.data.bucket),
        state,
    )


def run_consumer_action(args: argparse.Namespace, consumers: Consumers) -> int:
    """One action; prints its outcome as the operators log it. 1 when it failed or was
    refused (the record says why, and so does the output)."""
    from loopline.streaming import actions

    if args.action == "status":
        return _print_status(consumers)
    run = cli_run(consumers.spec, args.action)
    version = args.version or "champion"
    if args.action == "deploy":
        outcome = actions.deploy_consumers(consumers, run, version, args.replicas)
    elif args.action == "roll":
        outcome = actions.roll_consumers(consumers, run, version)
    elif args.action == "scale":
        outcome = actions.scale_consumers(consumers, run, args.replicas, version)
    elif args.action == "shadow":
        shadow = None if args.version in (None, "none") else int(args.version)
        outcome = actions.shadow_consumers(consumers, run, shadow, args.share)
    else:
        outcome = actions.stop_consumers(consumers, run)
    for step in outcome.steps:
        print(f"  {step}")
    replicas = ", ".join(f"{slot}: v{v}" for slot, v in sorted(outcome.replicas.items()))
    print(f"{consumers.spec.name} {outcome.action}: {outcome.verdict} ({replicas or 'none'})")
    print(f"recorded as run {run.run_id}")
    return 1 if outcome.failed else 0


def _print_status(consumers: Consumers) -> int:
    """Each replica's last heartbeat, and what the deployment sees wrong."""
    deployment = consumers.deployment
    beats = deployment.heartbeats()
    print(f"{consumers.spec.name}: {deployment.replica_count()} replica(s) running")
    for beat in beats:
        print(json.dumps(beat, sort_keys=True, default=str))
    problems = deployment.problems()
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


__all__ = ["ACTIONS", "cli_run", "open_consumers", "run_consumer_action"]
