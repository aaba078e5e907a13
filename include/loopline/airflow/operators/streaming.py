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
    def bootstrap(self) -> str:
        return KafkaBootstrapHook(self.kafka_conn_id).bootstrap

    @cached_property
    def backend(self) -> Any:
        from loopline.streaming.local_backend import LocalProcessBackend

        streaming = self._streaming()
        state = Path(os.environ.get("LOOPLINE_STATE_DIR") or Path.cwd() / ".loopline")
        return LocalProcessBackend(
            self.spec.name,
            Path(self.spec_path).resolve(),
            self.bootstrap,
            state,
            self.hook.settings.to_json(),
            streaming.consumer_group,
            streaming.static_membership,
        )

    def version(self, wanted: Any) -> int:
        """A version number from "champion" (the registry's) or a number."""
        from loopline.registry import CHAMPION

        if str(wanted) in ("", "None", "champion"):
            version = self.registry.alias(self.spec.name, CHAMPION)
            if version is None:
                raise AirflowFailException(f"{self.spec.name} has no champion to serve yet")
            return version
        return int(wanted)

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
        from loopline.streaming import deployment
        from loopline.streaming.topics import ensure_topics

        streaming = self._streaming()
        created = ensure_topics(self.bootstrap, [streaming])
        if created:
            self.log.info("created topics %s", created)
        count = int(self.replicas) if self.replicas not in (None, "", "None") else None
        if count is None:  # as many as run now, at least the minimum
            count = max(len(self.backend.slots()), streaming.replicas.min)
        if count > streaming.partitions:  # a replica beyond the partitions would idle
            self.log.warning("%d replicas asked, %d partitions: %d", count,
                             streaming.partitions, streaming.partitions)  # fmt: skip
            count = streaming.partitions
        action = str(self.action)
        if action == "stop":
            outcome = deployment.stop_all(self.backend)
        else:
            version = self.version(self.model_version)
            run = deployment.deploy if action == "deploy" else deployment.scale
            outcome = run(self.backend, version, count)
        for step in outcome.steps:
            self.log.info("%s", step)
        self.record(
            context, outcome.verdict, action, reasons=outcome.steps,
            numbers={"replicas": len(outcome.replicas)}, payload=outcome.to_dict(),
        )  # fmt: skip
        if outcome.verdict in ("rolled_back", "unhealthy"):
            raise AirflowFailException(f"{action}: {outcome.verdict}: " + "; ".join(outcome.steps))
        return outcome.to_dict()


class MonitorConsumersOperator(StreamingOperator):
    """Replace dead replicas (dynamic scaling), then auto-scale on lag and latency."""

    ui_color = "#f3e5f5"

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming import deployment
        from loopline.streaming.monitor import ScalingWindow, observe, scaling_limits
        from loopline.streaming.scaling import decide_scale

        streaming, backend = self._streaming(), self.backend
        slots = backend.slots()
        if not slots:
            self.log.info("no replicas deployed for %s: nothing to watch", self.spec.name)
            return {"replicas": 0}
        version = self.version("champion")
        replaced = deployment.replace_dead(backend, version)
        if replaced.verdict == "replaced":
            for step in replaced.steps:
                self.log.warning("%s", step)
            self.record(context, "replaced", "replace_dead", reasons=replaced.steps,
                        payload=replaced.to_dict())  # fmt: skip
        now, window = time.time(), ScalingWindow(backend.folder / "scaling-window.json")
        seen = observe(self.bootstrap, streaming, backend, now)
        decision = decide_scale(seen, scaling_limits(streaming), window.recent(now))
        window.add(now, decision.desired)
        self.log.info(
            "scaling: %s -> %s: %s", decision.current, decision.desired, "; ".join(decision.reasons)
        )
        if decision.desired != decision.current:
            deployment.scale(backend, version, decision.desired)
        self.record(
            context, decision.action, "scaling", reasons=decision.reasons,
            numbers={**decision.numbers, "current": decision.current, "desired": decision.desired},
            payload=decision.to_dict(),
        )  # fmt: skip
        return decision.to_dict()
