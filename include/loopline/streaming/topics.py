"""The Kafka topics a pipeline's streaming section names, created where they are missing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from loopline.streaming.kafka_settings import client_settings, topic_durability

if TYPE_CHECKING:
    from loopline.spec.sections import StreamingSpec


def ensure_topics(
    bootstrap_servers: str,
    streaming_specs: Iterable[StreamingSpec],
    *,
    client_id: str = "loopline",
) -> list[str]:
    """Create each spec's input, output and dead-letter topics unless they exist, as durable
    as the spec and the cluster allow (`topic_durability`); return the ones created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id=client_id, **client_settings()
    )
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        brokers = len(admin.describe_cluster()["brokers"])
        for streaming in streaming_specs:
            factor, configs = topic_durability(
                brokers, streaming.replication_factor, streaming.min_insync_replicas
            )
            for topic in (streaming.input_topic, streaming.output_topic, streaming.dead_letters):
                if topic in existing:
                    continue
                new = NewTopic(topic, streaming.partitions, factor, topic_configs=configs)
                try:
                    admin.create_topics([new])
                    created.append(topic)
                except TopicAlreadyExistsError:  # another client created it meanwhile
                    pass
                existing.add(topic)
    finally:
        admin.close()
    return created
