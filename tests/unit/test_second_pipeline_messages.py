"""What a second pipeline (not the card_fraud demo) meets: `stream produce` events for its own
spec, and drift and promotion messages that read the right way round.

No test helpers: the pipeline is card_fraud's spec file with a breast-cancer table in place
of the card transactions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.commands.stream import generated_events, line_records
from loopline.drift.scores import ColumnDrift
from loopline.promotion.gates import Measurement, decide
from loopline.spec.sections import PipelineSpec, PromotionSpec
from loopline.streaming.events import Event, Poison, parse_event

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [
    {"name": "sample_id", "type": "string"},
    {"name": "measured_at", "type": "timestamp"},
    {"name": "mean_radius", "type": "float64"},
    {"name": "mean_texture", "type": "float32"},
    {"name": "node_count", "type": "int64"},
    {"name": "has_lump", "type": "bool"},
    {"name": "clinic", "type": "string"},
    {"name": "diagnosis", "type": "int64"},
]
NUMERIC = ["mean_radius", "mean_texture", "node_count", "has_lump"]


def breast_cancer_spec(**model_changes: Any) -> PipelineSpec:
    document = yaml.safe_load((PROJECT_ROOT / "include/pipelines/card_fraud.yaml").read_text())
    document["name"] = "breast_cancer"
    document.pop("demo")
    document["data"] |= {"key": "sample_id", "timestamp": "measured_at", "columns": COLUMNS}
    document["model"] |= {
        "features": {"numeric": NUMERIC, "categorical": ["clinic"]},
        "label": "diagnosis",
    } | model_changes
    document["drift"]["key_features"] = ["mean_radius"]
    return PipelineSpec.model_validate(document)


# ---------------------------------------------------------------- stream produce --count


def test_count_events_for_a_non_demo_spec_pass_the_replicas_strict_reading() -> None:
    spec = breast_cancer_spec()
    records = generated_events(spec, count=20, seed=3)

    assert len(records) == 20 and len({key for key, _ in records}) == 20
    for key, value in records:
        event = parse_event(key, value, 0, spec.model, max_bytes=1_000_000)
        assert isinstance(event, Event), event
        assert set(event.features) == {*NUMERIC, "clinic"}
        assert "sample_id" not in json.loads(value)  # the id travels as the record's key
    assert generated_events(spec, count=20, seed=3) == records  # seeded


def test_count_events_for_the_demo_spec_still_come_from_the_demo_feed() -> None:
    from loopline.spec import load_spec

    spec = load_spec(PROJECT_ROOT / "include/pipelines/card_fraud.yaml")
    [(key, value)] = generated_events(spec, count=1, seed=7)

    assert isinstance(parse_event(key, value, 0, spec.model, 1_000_000), Event)
    assert json.loads(value)["merchant_category"] != "merchant_category_0"  # not synthetic


def test_count_refuses_a_spec_with_a_numeric_feature_it_cannot_make_a_number_for() -> None:
    spec = breast_cancer_spec(features={"numeric": ["mean_radius", "clinic"]})

    with pytest.raises(SystemExit) as refused:
        generated_events(spec, count=5, seed=1)

    message = str(refused.value)
    assert "breast_cancer" in message and "clinic (string)" in message and "--file" in message


# ---------------------------------------------------------------- stream produce --file


def test_file_lines_are_keyed_by_the_specs_data_key_and_bad_lines_are_named() -> None:
    lines = [
        '{"sample_id": "s-1", "event_id": "ignored", "mean_radius": 14.1}\n',
        '{"event_id": "e-2", "mean_radius": 9.0}\n',  # no data.key: the replicas read event_id
        "\n",
        "not json\n",  # sent as it is: the replicas dead-letter it
        '{"sample_id": 42}\n',
    ]
    keys = [key for key, _ in line_records(lines, "sample_id", "events.jsonl")]
    assert keys == [b"s-1", b"e-2", b"line-4", b"42"]

    lacking = ['{"sample_id": "a"}\n', '{"mean_radius": 1.0}\n']
    with pytest.raises(SystemExit, match=r"^events.jsonl line 2: no event id: .*'sample_id'"):
        list(line_records(lacking, "sample_id", "events.jsonl"))
    with pytest.raises(SystemExit, match=r"^stdin line 1: no event id \(found ''\)"):
        list(line_records(['{"sample_id": ""}'], "sample_id", "stdin"))


def test_a_file_event_keyed_by_data_key_is_what_the_replica_reads_as_its_id() -> None:
    spec = breast_cancer_spec()
    row = {"sample_id": "s-9", "mean_radius": 14.1, "mean_texture": 20.3, "node_count": 2,
           "has_lump": 1, "clinic": "north"}  # fmt: skip
    [(key, value)] = line_records([json.dumps(row)], "sample_id", "stdin")

    event = parse_event(key, value, 0, spec.model, 1_000_000)
    assert isinstance(event, Event) and event.event_id == "s-9"
    unkeyed = parse_event(None, value, 0, spec.model, 1_000_000)  # the replica reads no data.key
    assert isinstance(unkeyed, Poison) and unkeyed.kind == "key"


# ---------------------------------------------------------------- drift log


@pytest.mark.parametrize(
    ("kind", "score", "threshold", "drifted", "text"),
    [
        ("p_value", 0.0, 0.05, True, "K-S p_value 0.0000 <= 0.05: drifted"),
        ("p_value", 0.4, 0.05, False, "K-S p_value 0.4000 > 0.05: no drift"),
        ("distance", 0.23, 0.1, True, "Wasserstein distance (normed) 0.2300 >= 0.1: drifted"),
        ("distance", 0.02, 0.1, False, "Wasserstein distance (normed) 0.0200 < 0.1: no drift"),
    ],
)
def test_a_drift_description_states_the_comparison_that_decided_it(
    kind: str, score: float, threshold: float, drifted: bool, text: str
) -> None:
    method = "K-S p_value" if kind == "p_value" else "Wasserstein distance (normed)"
    drift = ColumnDrift("mean_radius", method, score, kind, threshold, drifted)  # type: ignore[arg-type]

    assert drift.describe() == f"mean_radius: {text}"


# ---------------------------------------------------------------- promotion checks


def measured(auc: float, logloss: float) -> Measurement:
    return Measurement({"auc": auc, "logloss": logloss}, 5.0, 1.0, [])


def test_promotion_checks_say_improved_or_regressed_whichever_way_is_better() -> None:
    rules = PromotionSpec(metric="auc", min_improvement=0.002, guard_tolerances={"logloss": 0.02})
    checks = {
        check.name: check
        for check in decide(measured(0.93, 0.2312), measured(0.91, 0.2568), rules).checks
    }

    assert checks["logloss guard"].passed
    assert checks["logloss guard"].detail == (
        "0.2312 vs champion 0.2568: improved by 0.0256 (lower is better; may regress by at "
        "most 0.02)"
    )
    assert checks["auc improvement"].detail == (
        "0.9300 vs champion 0.9100: improved by 0.0200 (higher is better; must improve by at "
        "least 0.002)"
    )
    worse = decide(measured(0.90, 0.2912), measured(0.91, 0.2568), rules).checks
    details = {check.name: (check.passed, check.detail) for check in worse}
    assert details["logloss guard"] == (
        False,
        "0.2912 vs champion 0.2568: regressed by 0.0344 (lower is better; may regress by at "
        "most 0.02)",
    )
    assert details["auc improvement"][1].startswith("0.9000 vs champion 0.9100: regressed by")


def test_a_tie_on_the_promotion_metric_says_it_keeps_the_champion() -> None:
    rules = PromotionSpec(metric="logloss", min_improvement=0.0)
    [check] = [c for c in decide(measured(0.9, 0.25), measured(0.9, 0.25), rules).checks
               if c.name == "logloss improvement"]  # fmt: skip

    assert not check.passed
    assert check.detail == (
        "0.2500 vs champion 0.2500: unchanged (lower is better; a tie keeps the champion)"
    )
