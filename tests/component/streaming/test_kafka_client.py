"""The Kafka client as installed: what the replicas' speed depends on."""

from __future__ import annotations


def test_kafka_python_checks_crcs_in_c() -> None:
    """kafka-python checks every fetched batch's CRC-32C; without the `crc32c` package (its
    extra) it does so in pure Python, which was a quarter of a replica's CPU at 1,000 events/s
    and halved its throughput (README, `streaming` benchmark)."""
    from kafka.record import util

    assert util.crc32c_c is not None, "install kafka-python[crc32c] (requirements.lock has it)"
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
