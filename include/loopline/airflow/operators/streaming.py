"""Operators of a pipeline's streaming consumers, one per action: deploy, roll, scale, stop,
and the monitor's pass; and the branch the ``<pipeline>.stream_deploy`` DAG takes on its
form's action.

Provider-style: each takes the pipeline's spec file, its run-time arguments as templated
fields (typed when the task runs, `typed`) and the connections it reaches Kafka, S3 and
Kubernetes through. The decisions and records are the library's
(``loopline.streaming.actions``): an operator reads its arguments, calls one function, logs
what it did and returns it. A refused version, a rollback or an unhealthy replica fails the
task without retries: the same call would decide the same.

Use them in a hand-written DAG as the generated DAGs do::

    DeployConsumersOperator(
        task_id="deploy", spec_path="include/pipelines/card_fraud.yaml",
        model_version="{{ params.model_version }}", replicas=2,
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from loopline.airflow.hooks import KafkaBootstrapHook, KubernetesApiHook
from loopline.airflow.lineage import NOTHING, TaskLineage, kafka_topic, model_version
from loopline.airflow.lineage import consumers as consumers_lineage
from loopline.airflow.log_context import bind_model_version
from loopline.airflow.operators.arguments import typed
from loopline.airflow.operators.base import PipelineOperator
from loopline.plan.streaming import ActionArguments, SizeArguments, VersionArguments

if TYPE_CHECKING:
    from loopline.streaming.actions import Consumers
    from loopline.streaming.deployment import Outcome

KAFKA_CONN_ID = KafkaBootstrapHook.default_conn_name
KUBERNETES_CONN_ID = KubernetesApiHook.default_conn_name


class ConsumersOperator(PipelineOperator):
    """What every consumer operator takes besides its action's arguments: the connections
    its pipeline's consumers are reached through (``consumers``, opened on first use).

    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    :param kubernetes_conn_id: the Kubernetes API connection (``streaming.backend:
        kubernetes`` only).
    """

    def __init__(
        self,
        *,
        kafka_conn_id: str = KAFKA_CONN_ID,
        kubernetes_conn_id: str = KUBERNETES_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kafka_conn_id, self.kubernetes_conn_id = kafka_conn_id, kubernetes_conn_id

    @cached_property
    def consumers(self) -> Consumers:
        """The pipeline's consumers as this task's connections reach them."""
        from loopline.runtime.files import state_dir
        from loopline.streaming.actions import Connections, Consumers, consumer_deployment

        kafka = KafkaBootstrapHook(self.kafka_conn_id)
        connections = Connections(
            bootstrap=kafka.bootstrap,
            session_timeout_ms=kafka.session_timeout_ms,
            s3_settings=lambda: self.hook.settings.to_json(),
            kubernetes=KubernetesApiHook(self.kubernetes_conn_id).applier,
        )
        state, spec_path = state_dir(), Path(self.spec_path)
        return Consumers(
            self.spec,
            partial(consumer_deployment, self.spec, spec_path, connections, state),
            connections.bootstrap,
            self.registry,
            self.records,
            state,
        )

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The consumers' topics, and the versions its replicas serve after the action."""
        streaming, bucket = self.spec.streaming, self.spec.data.bucket
        if streaming is None:
            return NOTHING
        served = sorted({int(v) for v in (outcome or {}).get("replicas", {}).values() if v})
        models = [model_version(bucket, self.spec.name, v) for v in served]
        return consumers_lineage(self._bootstrap(), streaming, models)

    def _bootstrap(self) -> str:
        if "consumers" in self.__dict__:  # opened by the action: no second connection lookup
            return self.consumers.bootstrap
        return KafkaBootstrapHook(self.kafka_conn_id).bootstrap


class DeployConsumersOperator(ConsumersOperator):
    """Start a pipeline's consumers on a model version, or roll the running ones to it one
    at a time (each healthy before the next; a version that never becomes healthy is rolled
    back and the task fails). Creates the pipeline's topics first.

    :param spec_path: the pipeline's spec file.
    :param model_version: ``champion`` or a version number that is the champion or passed
        its judgement (templated); any other is refused (a ``refused`` record) before any
        topic or replica is touched.
    :param replicas: how many (templated); empty: as many as run now, at least
        ``streaming.replicas.min``. Always within ``replicas.min..min(replicas.max,
        partitions)``.
    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    :param kubernetes_conn_id: the Kubernetes API connection (``streaming.backend:
        kubernetes`` only).
    :param aws_conn_id: the S3 connection to the registry and the records.
    """

    template_fields = ("model_version", "replicas")
    ui_color = "#e1f5fe"

    def __init__(
        self,
        *,
        model_version: Any = "champion",
        replicas: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_version, self.replicas = model_version, replicas

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.actions import deploy_consumers

        args, run = typed(self, SizeArguments), self.run_context(context)
        bind_model_version(args.model_version)
        outcome = deploy_consumers(self.consumers, run, args.model_version, args.replicas)
        return finish_action(self, outcome)


class RollConsumersOperator(ConsumersOperator):
    """Roll a pipeline's running consumers to a model version, one at a time, keeping their
    count; refused (the task fails) when none run: deploy starts them.

    :param spec_path: the pipeline's spec file.
    :param model_version: ``champion`` or a version number that may serve (templated).
    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    :param kubernetes_conn_id: the Kubernetes API connection (``streaming.backend:
        kubernetes`` only).
    :param aws_conn_id: the S3 connection to the registry and the records.
    """

    template_fields = ("model_version",)
    ui_color = "#e1f5fe"

    def __init__(
        self,
        *,
        model_version: Any = "champion",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_version = model_version

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.actions import roll_consumers

        args, run = typed(self, VersionArguments), self.run_context(context)
        bind_model_version(args.model_version)
        outcome = roll_consumers(self.consumers, run, args.model_version)
        return finish_action(self, outcome)


class ScaleConsumersOperator(ConsumersOperator):
    """Run a number of a pipeline's consumers: new replicas start on a model version, running
    ones keep theirs, the highest slots retire first. The monitor holds the count asked for
    ``streaming.scale_in_after_seconds`` before it may scale in.

    :param spec_path: the pipeline's spec file.
    :param replicas: how many (templated); empty: as many as run now. Always within
        ``replicas.min..min(replicas.max, partitions)``.
    :param model_version: what new replicas start on (templated): ``champion`` or a version
        number that may serve.
    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    :param kubernetes_conn_id: the Kubernetes API connection (``streaming.backend:
        kubernetes`` only).
    :param aws_conn_id: the S3 connection to the registry and the records.
    """

    template_fields = ("replicas", "model_version")
    ui_color = "#e1f5fe"

    def __init__(
        self,
        *,
        replicas: Any,
        model_version: Any = "champion",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.replicas, self.model_version = replicas, model_version

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.actions import scale_consumers

        args, run = typed(self, SizeArguments), self.run_context(context)
        bind_model_version(args.model_version)
        outcome = scale_consumers(self.consumers, run, args.replicas, args.model_version)
        return finish_action(self, outcome)


class StopConsumersOperator(ConsumersOperator):
    """Stop every one of a pipeline's consumers (each drains, commits and leaves its group).

    :param spec_path: the pipeline's spec file.
    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    :param kubernetes_conn_id: the Kubernetes API connection (``streaming.backend:
        kubernetes`` only).
    :param aws_conn_id: the S3 connection to the registry and the records.
    """

    ui_color = "#e1f5fe"

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.actions import stop_consumers

        return finish_action(self, stop_consumers(self.consumers, self.run_context(context)))

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """Stopping reads and writes nothing."""
        return NOTHING


class MonitorConsumersOperator(ConsumersOperator):
    """One pass of a pipeline's consumer monitor: replace dead replicas, then scale on lag
    and latency within ``replicas.min..min(replicas.max, partitions)``; every decision is a
    record, "no change" too. Nothing to do when no replica runs.

    :param spec_path: the pipeline's spec file.
    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    :param kubernetes_conn_id: the Kubernetes API connection (``streaming.backend:
        kubernetes`` only).
    :param aws_conn_id: the S3 connection to the registry and the records.
    """

    ui_color = "#f3e5f5"

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.registry import RegistryError
        from loopline.streaming.actions import monitor_consumers

        try:
            seen = monitor_consumers(self.consumers, self.run_context(context))
        except RegistryError as exc:  # no champion to restart or add replicas on
            raise AirflowFailException(str(exc)) from exc
        if seen is None:
            self.log.info("no replicas deployed for %s: nothing to watch", self.spec.name)
            return {"replicas": 0}
        for step in seen.replaced.steps if seen.replaced.verdict == "replaced" else []:
            self.log.warning("%s", step)
        for problem in seen.problems:
            self.log.error("%s", problem)
        decision = seen.decision
        self.log.info(
            "scaling: %s -> %s: %s", decision.current, decision.desired, "; ".join(decision.reasons)
        )
        return decision.to_dict()

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The input topic, whose lag it reads."""
        streaming = self.spec.streaming
        if streaming is None:
            return NOTHING
        return TaskLineage.of(inputs=[kafka_topic(self._bootstrap(), streaming.input_topic)])


class ChooseConsumerActionOperator(BaseBranchOperator):
    """Follow the task of one action (deploy, scale or stop) and skip the others: the
    ``stream_deploy`` DAG's branch on its form's action.

    :param action: ``deploy``, ``scale`` or ``stop`` (templated); empty: deploy (a run on a
        champion event).
    :param branches: each action's task id, downstream of this task.
    """

    template_fields = ("action",)

    def __init__(
        self, *, action: Any = "deploy", branches: Mapping[str, str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.action, self.branches = action, dict(branches)

    def choose_branch(self, context: Context) -> str:
        action = typed(self, ActionArguments).action
        if action not in self.branches:  # a retry would not find one either
            raise AirflowFailException(f"{self.task_id}: no task for action {action!r}")
        return self.branches[action]


def finish_action(operator: PipelineOperator, outcome: Outcome) -> dict[str, Any]:
    """Log what an action did; fail the task where it did not do what was asked."""
    for step in outcome.steps:
        operator.log.info("%s", step)
    if outcome.failed:
        raise AirflowFailException(
            f"{outcome.action}: {outcome.verdict}: " + "; ".join(outcome.steps)
        )
    return outcome.to_dict()
