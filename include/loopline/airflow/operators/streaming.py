"""Operators that deploy, roll, scale and watch a pipeline's streaming consumers.

Thin glue over ``loopline.streaming``: the policy (one slot at a time, health, rollback,
replacing the dead, the scaling formula) lives there; here the backend is built from the
task's connections, and each action is recorded (verdict, steps, numbers), "no change" too.
"""

from __future__ import annotations

import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from loopline.airflow.hooks import KafkaBootstrapHook
from loopline.airflow.operators.base import RegistryOperator


class StreamingOperator(RegistryOperator):
    """An operator of one pipeline's consumers: its backend and its records."""

    def __init__(self, *, kafka_conn_id: str = "kafka_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kafka_conn_id = kafka_conn_id

    @cached_property
    def kafka(self) -> KafkaBootstrapHook:
        return KafkaBootstrapHook(self.kafka_conn_id)

    @cached_property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @cached_property
    def deployment(self) -> Any:
        """Where the replicas run, as the spec's `streaming.backend` says."""
        from loopline.streaming.deployment import SlotDeployment
        from loopline.streaming.local_backend import LocalProcessBackend

        streaming = self._streaming()
        if streaming.backend == "kubernetes":
            from loopline.airflow.hooks import KubernetesApiHook
            from loopline.streaming.kubernetes import KubernetesDeployment, consumer_image

            image = consumer_image(self.spec, Path(self.spec_path).name, self.bootstrap)
            return KubernetesDeployment(self.spec, image, KubernetesApiHook().applier())
        return SlotDeployment(
            LocalProcessBackend(
                self.spec.name,
                Path(self.spec_path).resolve(),
                self.bootstrap,
                self.state_dir,
                self.hook.settings.to_json(),
                streaming.consumer_group,
                streaming.static_membership,
                metrics=streaming.metrics_port != 0,
                session_timeout_ms=self.kafka.session_timeout_ms,
            )
        )

    def scaling_window(self) -> Any:
        """The recommendations of the last `scale_in_after_seconds`, for the monitor."""
        from loopline.streaming.monitor import ScalingWindow

        path = self.state_dir / "streaming" / self.spec.name / "scaling-window.json"
        return ScalingWindow(path, self._streaming().scale_in_after_seconds)

    @property
    def state_dir(self) -> Path:
        return Path(os.environ.get("LOOPLINE_STATE_DIR") or Path.cwd() / ".loopline")

    def version(self, wanted: Any) -> int:
        """The champion's number for "champion", else a number the library allows to serve
        (the champion, or judged passing); a refusal fails the task without retries: the
        registry will not change its mind between two tries."""
        from loopline.registry import RegistryError
        from loopline.streaming.deployment import version_to_serve

        try:
            return version_to_serve(self.registry, self.spec.name, wanted)
        except RegistryError as exc:
            raise AirflowFailException(str(exc)) from exc

    def record(self, context: Context, verdict: str, subject: str, **fields: Any) -> None:
        from loopline.records import RecordStage, RecordStore

        record = self.run_context(context).record(
            RecordStage.STREAMING, verdict, subject=subject, **fields
        )
        RecordStore(self.store, self.spec.data.bucket).write(record)

    def _streaming(self) -> Any:
        if self.spec.streaming is None:
            raise AirflowFailException(f"{self.spec.name} has no streaming section")
        return self.spec.streaming


class DeployConsumersOperator(StreamingOperator):
    """Deploy (or roll to) a model version as N replicas, scale to N, or stop them all."""

    template_fields = ("action", "model_version", "replicas")
    ui_color = "#e1f5fe"

    def __init__(
        self, *, action: Any = "deploy", model_version: Any = "champion", replicas: Any = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.action, self.model_version, self.replicas = action, model_version, replicas

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.topics import ensure_topics

        streaming, action = self._streaming(), str(self.action)
        # Checked first: a refused version leaves no topic, replica or scaling entry behind.
        version = None if action == "stop" else self.servable(context, action)
        created = ensure_topics(self.bootstrap, [streaming])
        if created:
            self.log.info("created topics %s", created)
        count = int(self.replicas) if self.replicas not in (None, "", "None") else None
        if count is None:  # as many as run now, at least the minimum
            count = max(self.deployment.replica_count(), streaming.replicas.min)
        if count > streaming.partitions:  # a replica beyond the partitions would idle
            self.log.warning("%d replicas asked, %d partitions: %d", count,
                             streaming.partitions, streaming.partitions)  # fmt: skip
            count = streaming.partitions
        if version is None:
            outcome = self.deployment.stop()
        else:
            run = self.deployment.deploy if action == "deploy" else self.deployment.scale
            outcome = run(version, count)
            # The monitor holds an asked-for count like its own scale-out.
            self.scaling_window().add(time.time(), count)
        for step in outcome.steps:
            self.log.info("%s", step)
        self.record(
            context, outcome.verdict, action, reasons=outcome.steps,
            numbers={"replicas": len(outcome.replicas)}, payload=outcome.to_dict(),
        )  # fmt: skip
        if outcome.verdict in ("rolled_back", "unhealthy"):
            raise AirflowFailException(f"{action}: {outcome.verdict}: " + "; ".join(outcome.steps))
        return outcome.to_dict()

    def servable(self, context: Context, action: str) -> int:
        """The version to start, or the refusal recorded (a decision like any other) and
        the task failed."""
        try:
            return self.version(self.model_version)
        except AirflowFailException as exc:
            self.record(context, "refused", action, reasons=[str(exc)],
                        payload={"model_version": str(self.model_version)})  # fmt: skip
            raise


class MonitorConsumersOperator(StreamingOperator):
    """Replace dead replicas (dynamic scaling), then auto-scale on lag and latency."""

    ui_color = "#f3e5f5"

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.monitor import monitor_once

        streaming, deployment = self._streaming(), self.deployment
        if deployment.replica_count() == 0:
            self.log.info("no replicas deployed for %s: nothing to watch", self.spec.name)
            return {"replicas": 0}
        window, champion = self.scaling_window(), self.version("champion")
        seen = monitor_once(deployment, self.bootstrap, streaming, champion, window)
        if seen.replaced.verdict == "replaced":
            for step in seen.replaced.steps:
                self.log.warning("%s", step)
            self.record(context, "replaced", "replace_dead", reasons=seen.replaced.steps,
                        payload=seen.replaced.to_dict())  # fmt: skip
        if seen.problems:  # dying on records shows here, not only as restarts in logs
            for problem in seen.problems:
                self.log.error("%s", problem)
            self.record(context, "unhealthy", "health", reasons=seen.problems)
        decision = seen.decision
        self.log.info(
            "scaling: %s -> %s: %s", decision.current, decision.desired, "; ".join(decision.reasons)
        )
        steps = seen.scaled.steps if seen.scaled else []
        self.record(
            context, decision.action, "scaling", reasons=[*decision.reasons, *steps],
            numbers={**decision.numbers, "current": decision.current, "desired": decision.desired},
            payload=decision.to_dict(),
        )  # fmt: skip
        return decision.to_dict()
