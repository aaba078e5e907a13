"""How Loopline names what its tasks read and wrote (``loopline.airflow.lineage``): pure logic,
no Airflow (the provider's classes are built only in `to_operator_lineage`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from loopline.airflow.lineage import (
    DatasetName,
    TaskLineage,
    consumers,
    kafka_topic,
    model_alias,
    model_version,
    of_record,
    routed_files,
    s3_object,
    s3_uri,
    snapshot_table,
)


def test_an_s3_object_is_named_by_its_bucket_and_key() -> None:
    assert s3_object("loopline", "card_fraud/validated/a.parquet") == DatasetName(
        "s3://loopline", "card_fraud/validated/a.parquet"
    )
    # A prefix is named without its trailing slash: the same dataset as Airflow's assets.
    assert s3_object("loopline", "card_fraud/landing/").name == "card_fraud/landing"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "s3://loopline/card_fraud/predictions/dt=2026-11-23/",
            ("s3://loopline", "card_fraud/predictions/dt=2026-11-23"),
        ),
        ("s3a://loopline/x/y.parquet", ("s3://loopline", "x/y.parquet")),
    ],
)
def test_an_s3_uri_names_the_same_dataset_as_its_bucket_and_key(uri, expected) -> None:
    assert s3_uri(uri) == DatasetName(*expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: s3_uri("gs://bucket/key"), "not an s3://bucket/key URI: 'gs://bucket/key'"),
        (lambda: s3_uri("s3:///key"), "not an s3://bucket/key URI"),
        (lambda: s3_object("loopline", "/"), "s3://loopline: an empty key names no dataset"),
        (lambda: s3_object("a/b", "k"), "not an S3 bucket name: 'a/b'"),
        (lambda: kafka_topic("localhost", "events"), "expected host:port"),
        (lambda: kafka_topic("localhost:9092", ""), "expected host:port"),
        (lambda: snapshot_table("b", "p", "r", "test"), "no snapshot table 'test'"),
    ],
)
def test_a_name_that_cannot_be_a_dataset_is_refused_saying_why(call, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        call()


def test_models_are_named_by_the_registrys_own_layout() -> None:
    assert model_version("loopline", "card_fraud", 7) == DatasetName(
        "s3://loopline", "models/card_fraud/versions/000007"
    )
    assert model_alias("loopline", "card_fraud", "champion").name == (
        "models/card_fraud/aliases/champion"
    )
    assert snapshot_table("loopline", "card_fraud", "run1", "train").name == (
        "models/card_fraud/runs/run1/train.parquet"
    )


def test_a_topic_is_named_by_the_first_bootstrap_server() -> None:
    assert kafka_topic("PLAINTEXT://broker-1:9092, broker-2:9092", "card_fraud.events") == (
        DatasetName("kafka://broker-1:9092", "card_fraud.events")
    )


def test_a_records_inputs_and_outputs_become_datasets_each_once() -> None:
    ref = lambda uri: SimpleNamespace(uri=uri)  # noqa: E731
    record = SimpleNamespace(
        inputs=[ref("s3://loopline/v/a.parquet"), ref("s3://loopline/v/a.parquet")],
        outputs=[ref("s3://loopline/models/card_fraud/runs/r/train.parquet")],
    )

    lineage = of_record(record)

    assert lineage.inputs == (DatasetName("s3://loopline", "v/a.parquet"),)
    assert lineage.outputs == (
        DatasetName("s3://loopline", "models/card_fraud/runs/r/train.parquet"),
    )


def test_routed_files_name_each_landed_file_and_every_place_it_went() -> None:
    results = [
        {
            "source": "l/a.csv",
            "destination": "v/a.csv.parquet",
            "archive_key": "arch/a.csv",
            "quarantine_key": None,
            "report_key": None,
        },
        {
            "source": "l/b.csv",
            "destination": "q/b.csv",
            "archive_key": None,
            "quarantine_key": None,
            "report_key": "q/b.csv.report.json",
        },
    ]

    lineage = routed_files("loopline", results)

    assert [d.name for d in lineage.inputs] == ["l/a.csv", "l/b.csv"]
    assert [d.name for d in lineage.outputs] == [
        "v/a.csv.parquet",
        "arch/a.csv",
        "q/b.csv",
        "q/b.csv.report.json",
    ]


def test_consumers_read_their_input_topic_and_model_and_write_predictions_and_dead_letters() -> (
    None
):
    streaming = SimpleNamespace(input_topic="in", output_topic="out", dead_letters="in.dead-letter")
    model = model_version("loopline", "card_fraud", 3)

    lineage = consumers("localhost:9092", streaming, [model])

    assert lineage.inputs == (DatasetName("kafka://localhost:9092", "in"), model)
    assert [d.name for d in lineage.outputs] == ["out", "in.dead-letter"]


def test_lineages_add_up_without_repeating_a_dataset() -> None:
    a, b = DatasetName("s3://x", "a"), DatasetName("s3://x", "b")

    total = TaskLineage.of([a], [b]) + TaskLineage.of([a, b], [b])

    assert total == TaskLineage((a, b), (b,))
