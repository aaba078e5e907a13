"""The Kafka topics a pipeline's streaming section names, created where they are missing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.spec.model import StreamingSpec


def ensure_topics(
    bootstrap_servers: str,
    streaming_specs: Iterable[StreamingSpec],
    *,
    client_id: str = "loopline",
) -> list[str]:
    """Create each spec's input, output and dead-letter topics unless they exist; return the
    ones created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for streaming in streaming_specs:
            for topic in (streaming.input_topic, streaming.output_topic, streaming.dead_letters):
                if topic in existing:
                    continue
                try:
                    admin.create_topics([NewTopic(topic, streaming.partitions, 1)])
                    created.append(topic)
                except TopicAlreadyExistsError:  # another client created it meanwhile
                    pass
                existing.add(topic)
    finally:
        admin.close()
    return created
