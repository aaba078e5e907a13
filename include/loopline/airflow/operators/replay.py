"""Operators of the ``<pipeline>.replay`` DAG: the branch on the form's choice, quarantined
files back to landing, dead letters back to the input topic.

Each reads its typed arguments, calls one library function (``loopline.validation.replay``,
``loopline.streaming.replay``: they decide, move and record), logs and returns. The
quarantine task's outlet is the landing asset: its event starts the validate DAG, which
validates the requeued files with the suite of now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from loopline.airflow.hooks import KafkaBootstrapHook
from loopline.airflow.lineage import NOTHING, TaskLineage, kafka_topic, s3_object
from loopline.airflow.operators.arguments import typed
from loopline.airflow.operators.base import PipelineOperator, announce
from loopline.plan.replay import DeadLetterArguments, QuarantineArguments, ReplayChoice


class ChooseReplayOperator(BaseBranchOperator):
    """Follow the task of the form's choice (quarantine or dead_letters), skip the other.

    :param what: ``quarantine`` or ``dead_letters`` (templated).
    :param branches: each choice's task id, downstream of this task.
    """

    template_fields = ("what",)

    def __init__(
        self, *, what: Any = "quarantine", branches: Mapping[str, str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.what, self.branches = what, dict(branches)

    def choose_branch(self, context: Context) -> str:
        what = typed(self, ReplayChoice).what
        if what not in self.branches:  # a retry would not find one either
            raise AirflowFailException(
                f"{self.task_id}: nothing to replay as {what!r}: the pipeline has no "
                "streaming section"
            )
        return self.branches[what]


class ReplayQuarantinedOperator(PipelineOperator):
    """Move quarantined files back to their landing keys (verified moves, reports archived,
    each file a ``replay`` record); the task's landing asset event starts the validate DAG.
    Refused files are logged and recorded; the task fails only when none was requeued.

    :param objects: quarantined keys, ``s3://`` URIs or prefixes (templated: a list).
    """

    template_fields = ("objects",)
    ui_color = "#fff3e0"

    def __init__(self, *, objects: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objects = objects

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.validation.replay import replay_quarantined

        objects = typed(self, QuarantineArguments).objects
        if not objects:
            raise AirflowFailException(
                f"{self.task_id}: name the quarantined files (objects), e.g. "
                f"{self.spec.data.quarantine_prefix}dt=2026-11-23/"
            )
        replay = replay_quarantined(self.store, self.spec, objects, self.run_context(context))
        self.keep_outcome(replay)
        for refused in replay.refused:
            self.log.warning("%s", refused.summary())
        if not replay.requeued:
            raise AirflowFailException(
                "nothing requeued: " + "; ".join(f.summary() for f in replay.refused)
            )
        for requeued in replay.requeued:
            self.log.info("%s", requeued.summary())
        summary = replay.to_dict()
        announce(context, self.outlets, {"keys": summary["requeued"], "replayed": True})
        return summary

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """Each quarantined file requeued, and its landing key (``QuarantineReplay``)."""
        if outcome is None:
            return NOTHING
        bucket, requeued = self.spec.data.bucket, outcome.requeued
        return TaskLineage.of(
            [s3_object(bucket, f.source) for f in requeued],
            [s3_object(bucket, f.landing_key) for f in requeued if f.landing_key],
        )


class ReplayDeadLettersOperator(PipelineOperator):
    """Produce dead-lettered events again to the pipeline's input topic; events already
    scored are reported and skipped unless `force`; recorded. A refused replay (no input
    topic, an output topic too long to check) fails the task without retries.

    :param max_events: at most this many letters (templated).
    :param force: replay events already scored, and letters an earlier replay settled
        (templated).
    :param kafka_conn_id: the Kafka connection (``extra.bootstrap.servers``, TLS/SASL keys).
    """

    template_fields = ("max_events", "force")
    ui_color = "#e1f5fe"

    def __init__(
        self,
        *,
        max_events: Any = None,
        force: Any = None,
        kafka_conn_id: str = KafkaBootstrapHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_events, self.force, self.kafka_conn_id = max_events, force, kafka_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.streaming.replay import replay_dead_letters

        args = typed(self, DeadLetterArguments)
        bootstrap = KafkaBootstrapHook(self.kafka_conn_id).bootstrap
        replay = replay_dead_letters(
            bootstrap,
            self.spec,
            self.run_context(context),
            self.records,
            max_events=args.max_events,
            force=args.force,
        )
        if replay.refused:
            raise AirflowFailException(replay.summary())
        self.log.info("%s", replay.summary())
        for reason in replay.reasons():
            self.log.warning("%s", reason)
        return {**replay.numbers, "next_offsets": replay.to_dict()["next_offsets"]}

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The dead-letter topic read, the input topic written again."""
        streaming = self.spec.streaming
        if streaming is None:
            return NOTHING
        bootstrap = KafkaBootstrapHook(self.kafka_conn_id).bootstrap
        return TaskLineage.of(
            [kafka_topic(bootstrap, streaming.dead_letters)],
            [kafka_topic(bootstrap, streaming.input_topic)] if outcome is not None else [],
        )
