"""A Kafka connection as the bootstrap servers Loopline's consumers and admin calls need.

The connection keeps librdkafka-style keys in its extra (``bootstrap.servers``), as the
apache-kafka provider's ``kafka`` connections do, so the same connection serves both. A
``session.timeout.ms`` there is a property of the brokers (the local one answers joins after
half of it) and overrides the specs' ``streaming.session_timeout_ms``. Its TLS and SASL
keys (``security.protocol``, ``sasl.*``, ``ssl.*``) reach every client the task makes and
every replica it starts (``loopline.streaming.kafka_settings``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from loopline.streaming.kafka_settings import export, from_extra


class KafkaBootstrapHook(BaseHook):
    conn_name_attr = "kafka_conn_id"
    default_conn_name = "kafka_default"
    hook_name = "Loopline Kafka bootstrap"

    def __init__(self, kafka_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kafka_conn_id = kafka_conn_id

    @property
    def bootstrap(self) -> str:
        connection = self.get_connection(self.kafka_conn_id)
        servers = connection.extra_dejson.get("bootstrap.servers") or (
            f"{connection.host}:{connection.port}" if connection.host else None
        )
        if not servers:
            raise ValueError(
                f"connection {self.kafka_conn_id!r} names no Kafka servers: set "
                "extra.bootstrap.servers (host:port[,host:port])"
            )
        export(self.security)  # every client of this task (and its replicas) connects alike
        return servers

    @property
    def security(self) -> dict[str, Any]:
        """kafka-python's TLS/SASL arguments from the connection's extra (none: plaintext)."""
        extra = self.get_connection(self.kafka_conn_id).extra_dejson
        return from_extra(extra, f"connection {self.kafka_conn_id!r}")

    @property
    def session_timeout_ms(self) -> int | None:
        """The connection's ``session.timeout.ms``, if it sets one."""
        value = self.get_connection(self.kafka_conn_id).extra_dejson.get("session.timeout.ms")
        return int(value) if value not in (None, "") else None
