"""Kafka security settings from the connection to every client, and topic durability."""

from __future__ import annotations

import json

import pytest
from loopline.streaming import kafka_settings
from loopline.streaming.kafka_settings import (
    KafkaSettingsError,
    client_settings,
    export,
    from_extra,
    topic_durability,
)


def test_a_connections_tls_and_sasl_keys_become_kafka_python_arguments() -> None:
    extra = {
        "bootstrap.servers": "b1:9093",
        "session.timeout.ms": "6000",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "scorer",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert from_extra(extra) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "scorer",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_check_hostname": True,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"security.protocol": "TLS"}, "security.protocol 'TLS' is not one of"),
        ({"security.protocol": "SASL_SSL"}, "SASL_SSL needs sasl.mechanism"),
        ({"sasl.mechanism": "MD5"}, "sasl.mechanism 'MD5' is not one of"),
        ({"ssl.keystore.location": "/k.jks"}, "extra 'ssl.keystore.location' is not supported"),
    ],
)
def test_security_settings_loopline_cannot_honour_are_refused_not_ignored(extra, message) -> None:
    with pytest.raises(KafkaSettingsError, match=message):
        from_extra(extra, "connection 'kafka_default'")


def test_exported_settings_reach_every_client_of_the_process_and_its_children(
    monkeypatch,
) -> None:
    monkeypatch.delenv(kafka_settings.ENV, raising=False)
    assert client_settings() == {}
    export({"security_protocol": "SSL", "ssl_cafile": "/ca.pem"})
    assert json.loads(__import__("os").environ[kafka_settings.ENV])["ssl_cafile"] == "/ca.pem"
    assert client_settings() == {"security_protocol": "SSL", "ssl_cafile": "/ca.pem"}
    export({})
    assert client_settings() == {}


def test_topics_are_as_durable_as_the_cluster_allows() -> None:
    assert topic_durability(1, None, None) == (1, {"min.insync.replicas": "1"})  # local
    assert topic_durability(5, None, None) == (3, {"min.insync.replicas": "2"})  # a cluster
    assert topic_durability(5, 5, 3) == (5, {"min.insync.replicas": "3"})
    with pytest.raises(KafkaSettingsError, match="replication_factor 3 exceeds the cluster's 1"):
        topic_durability(1, 3, None)
    with pytest.raises(KafkaSettingsError, match="min_insync_replicas 4 exceeds"):
        topic_durability(3, 3, 4)
