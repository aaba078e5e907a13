"""The pure parts of the service checks: which Spark master a connection names, and which of
Airflow's components are unhealthy."""

from __future__ import annotations

import pytest
from loopline.doctor.services import (
    spark_master,
    spark_master_from_uri,
    standalone_endpoints,
    unhealthy_components,
)


@pytest.mark.parametrize(
    ("uri", "master"),
    [
        ("spark://spark%3A%2F%2Fmaster.example%3A7077", "spark://master.example:7077"),
        ("spark://spark%3A%2F%2Fmaster.example:7077", "spark://master.example:7077"),
        ("spark://master.example:7077", "spark://master.example:7077"),
        ("spark://yarn", "yarn"),
        ("spark://local%5B%2A%5D", "local[*]"),
    ],
)
def test_the_master_of_an_airflow_connection_uri(uri: str, master: str) -> None:
    assert spark_master_from_uri(uri) == master


def test_the_master_as_the_spark_provider_builds_it() -> None:
    assert spark_master("local[*,4]", None) == "local[*,4]"
    assert spark_master("spark://h", 7077) == "spark://h:7077"
    assert spark_master(None, 7077) is None


def test_standalone_endpoints_default_the_port_and_list_ha_masters() -> None:
    assert standalone_endpoints("spark://a:7078,b") == [("a", 7078), ("b", 7077)]
    assert standalone_endpoints("yarn") == []


def test_unhealthy_components_name_their_state() -> None:
    health = {
        "metadatabase": {"status": "healthy"},
        "scheduler": {"status": "unhealthy"},
        "dag_processor": {"status": "healthy"},
    }
    assert unhealthy_components(health) == ["scheduler: unhealthy", "triggerer: not reported"]
