"""How every Kafka client of Loopline connects: TLS and SASL settings, and topic durability.

The settings come from the Airflow connection's extra, in the librdkafka-style keys the
apache-kafka provider's ``kafka`` connections use (``security.protocol``, ``sasl.mechanism``,
``sasl.username``, ``sasl.password``, ``ssl.ca.location``, ...), so one connection serves
both. They travel to the processes that need them in the ``LOOPLINE_KAFKA_SECURITY``
environment variable (JSON of kafka-python's arguments), as the S3 settings travel in
``LOOPLINE_S3``: never on a command line, and a pod takes it from a Secret. Every client,
replicas, operators, the CLI and the monitor, is built with `client_settings()`, so none of
them talks plaintext to a cluster that asked for TLS.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

ENV = "LOOPLINE_KAFKA_SECURITY"

# librdkafka key (the connection's extra) -> kafka-python argument
KEYS = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "ssl.crl.location": "ssl_crlfile",
    "ssl.endpoint.identification.algorithm": "ssl_check_hostname",
}
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")


class KafkaSettingsError(ValueError):
    pass


def from_extra(extra: Mapping[str, Any], where: str = "the Kafka connection") -> dict[str, Any]:
    """kafka-python's security arguments from a connection's extra; a security key Loopline
    does not know, or a value out of its set, is refused rather than silently ignored."""
    settings: dict[str, Any] = {}
    for key, value in extra.items():
        if not key.startswith(("security.", "sasl.", "ssl.")):
            continue  # bootstrap.servers, session.timeout.ms, group.id...: not security
        if key not in KEYS:
            known = ", ".join(sorted(KEYS))
            raise KafkaSettingsError(f"{where}: extra {key!r} is not supported (known: {known})")
        settings[KEYS[key]] = value
    return validated(settings, where)


def validated(settings: dict[str, Any], where: str) -> dict[str, Any]:
    protocol = str(settings.get("security_protocol", "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise KafkaSettingsError(f"{where}: security.protocol {protocol!r} is not one of "
                                 f"{', '.join(PROTOCOLS)}")  # fmt: skip
    settings["security_protocol"] = protocol
    if "sasl_mechanism" in settings:
        mechanism = str(settings["sasl_mechanism"]).upper()
        if mechanism not in MECHANISMS:
            raise KafkaSettingsError(f"{where}: sasl.mechanism {mechanism!r} is not one of "
                                     f"{', '.join(MECHANISMS)}")  # fmt: skip
        settings["sasl_mechanism"] = mechanism
    if protocol.startswith("SASL") and "sasl_mechanism" not in settings:
        raise KafkaSettingsError(f"{where}: {protocol} needs sasl.mechanism")
    if "ssl_check_hostname" in settings:  # librdkafka: "https" checks the name, "none" not
        settings["ssl_check_hostname"] = str(settings["ssl_check_hostname"]).lower() == "https"
    return settings


def client_settings() -> dict[str, Any]:
    """The security arguments for a kafka-python client in this process (none: plaintext)."""
    raw = os.environ.get(ENV)
    if not raw:
        return {}
    try:
        settings = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KafkaSettingsError(f"{ENV} is not JSON: {exc.msg}") from exc
    if not isinstance(settings, dict):
        raise KafkaSettingsError(f"{ENV} must be a JSON object of kafka-python settings")
    return validated(settings, ENV)


def export(settings: Mapping[str, Any]) -> None:
    """Use `settings` for every client this process and its children make from now on."""
    if settings:
        os.environ[ENV] = json.dumps(dict(settings))
    else:
        os.environ.pop(ENV, None)


def topic_durability(
    brokers: int, replication_factor: int | None, min_insync: int | None
) -> tuple[int, dict[str, str]]:
    """A new topic's replication factor and configs: the spec's, or 3 copies with 2 in sync
    (what acks=all needs to survive a broker), never more copies than the cluster has brokers
    (the local broker is one: 1 copy there)."""
    factor = replication_factor or min(3, max(brokers, 1))
    insync = min_insync or (min(2, factor - 1) if factor > 1 else 1)
    if factor > brokers:
        raise KafkaSettingsError(
            f"streaming.replication_factor {factor} exceeds the cluster's {brokers} broker(s)"
        )
    if insync > factor:
        raise KafkaSettingsError(
            f"streaming.min_insync_replicas {insync} exceeds the replication factor {factor}"
        )
    return factor, {"min.insync.replicas": str(insync)}
