"""Pipeline specs: the demo spec loads, and every kind of broken spec gets a clear error."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.spec import PipelineSpec, SpecError, load_spec
from loopline.spec.loader import spec_files
from support.paths import PIPELINES

DEMO = PIPELINES / "card_fraud.yaml"


def demo_document() -> dict[str, Any]:
    return yaml.safe_load(DEMO.read_text())


def write_spec(folder: Path, document: Any, name: str = "card_fraud") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def test_demo_spec_loads_into_typed_sections() -> None:
    spec = load_spec(DEMO)
    assert isinstance(spec, PipelineSpec)
    assert spec.name == "card_fraud"
    assert len(spec.model.features.numeric) == 30
    assert spec.model.features.categorical == ["merchant_category", "channel"]
    assert spec.data.format == "parquet"
    assert spec.streaming is not None and spec.streaming.replicas.max <= spec.streaming.partitions
    assert spec.demo is not None and spec.demo.rows == 5000


def test_every_shipped_spec_loads() -> None:
    assert "card_fraud" in [load_spec(path).name for path in spec_files(PIPELINES)]


def mutate(change):
    def build() -> dict[str, Any]:
        document = copy.deepcopy(demo_document())
        change(document)
        return document

    return build


def shadowed(document: dict, **streaming: object) -> None:
    """A shadow in `document`'s promotion section, and `streaming` changed."""
    document["promotion"]["shadow"] = {"min_pairs": 100}
    document["streaming"].update(streaming)


BROKEN = [
    pytest.param(
        mutate(lambda d: d["model"]["hyperparameters"].update(epochs="ten")),
        r"model\.hyperparameters\.epochs \(line \d+\): got 'ten', expected a valid integer",
        id="wrong-type",
    ),
    pytest.param(
        mutate(lambda d: d["model"]["hyperparameters"].update(epocs=3)),
        r"model\.hyperparameters\.epocs \(line \d+\): unknown field 'epocs'; "
        r"did you mean 'epochs'\?",
        id="typo-gets-a-hint",
    ),
    pytest.param(
        mutate(lambda d: d["promotion"].update(metric="recall")),
        r"promotion\.metric \(line \d+\): 'recall' is not among training\.metrics "
        r"\['auc', 'logloss', 'accuracy'\]; hint: add it there",
        id="promotion-metric-not-trained",
    ),
    pytest.param(
        mutate(lambda d: d["model"]["features"]["numeric"].__setitem__(3, "v99")),
        r"model\.features\.numeric\[3\] \(line \d+\): 'v99' is not a column of data\.columns",
        id="feature-not-a-column",
    ),
    pytest.param(
        mutate(lambda d: d.pop("data")),
        r"data: is required but missing",
        id="missing-section",
    ),
    pytest.param(
        mutate(lambda d: d["data"].update(validated_prefix="card_fraud/landing/ok/")),
        r"data\.validated_prefix \(line \d+\): 'card_fraud/landing/ok/' overlaps "
        r"data\.landing_prefix",
        id="overlapping-prefixes",
    ),
    pytest.param(
        mutate(lambda d: d["data"].update(landing_prefix="card_fraud/landing")),
        r"data\.landing_prefix \(line \d+\): got 'card_fraud/landing', expected string "
        r"should match pattern",
        id="prefix-without-trailing-slash",
    ),
    pytest.param(
        mutate(lambda d: d["streaming"]["replicas"].update(max=8)),
        r"streaming\.replicas\.max \(line \d+\): 8 exceeds partitions \(4\)",
        id="more-replicas-than-partitions",
    ),
    pytest.param(
        mutate(lambda d: shadowed(d, log_predictions=False)),
        r"promotion\.shadow \(line \d+\): needs a streaming section with log_predictions",
        id="shadow-without-the-prediction-log",
    ),
    pytest.param(
        mutate(lambda d: shadowed(d, backend="kubernetes", kubernetes={"image": "loopline:1"})),
        r"promotion\.shadow \(line \d+\): needs local replicas",
        id="shadow-on-kubernetes",
    ),
    pytest.param(
        mutate(lambda d: d["data"]["columns"][2].update(type="float33")),
        r"data\.columns\[2\]\.type \(line \d+\): got 'float33', expected 'string', 'int64'",
        id="unknown-column-type",
    ),
    pytest.param(
        mutate(lambda d: d["model"]["features"]["categorical"].append("is_fraud")),
        r"model\.label \(line \d+\): 'is_fraud' is also listed as a feature",
        id="label-is-a-feature",
    ),
    pytest.param(
        mutate(lambda d: d.update(name="another_name")),
        r"name \(line \d+\): 'another_name' must match the file name 'card_fraud'",
        id="name-differs-from-file",
    ),
    pytest.param(
        mutate(lambda d: d["data"].update(timestamp="amount")),
        r"data\.timestamp \(line \d+\): 'amount' is a float32 column; data\.timestamp must "
        r"name a timestamp column",
        id="timestamp-not-a-timestamp",
    ),
    pytest.param(
        mutate(lambda d: d["data"].update(key="v1")),
        r"data\.key \(line \d+\): 'v1' is a float32 column; data\.key must name a string or "
        r"int64 column",
        id="key-is-a-float",
    ),
    pytest.param(
        mutate(lambda d: d["data"].update(quarantine_prefix="records/quarantine/")),
        r"data\.quarantine_prefix \(line \d+\): 'records/quarantine/' is under 'records/', "
        r"where Loopline keeps its own objects",
        id="prefix-in-a-reserved-place",
    ),
    pytest.param(
        mutate(lambda d: d["training"].update(schedule="every day")),
        r"training\.schedule \(line \d+\): 'every day' is not a schedule; expected a "
        r"five-field cron expression",
        id="schedule-not-cron",
    ),
    pytest.param(
        mutate(lambda d: d["validation"].update(schedule="61 * * * *")),
        r"validation\.schedule \(line \d+\): '61 \* \* \* \*' is not a schedule",
        id="cron-out-of-range",
    ),
    pytest.param(lambda: "", r"expected a mapping of sections, got an empty file", id="empty"),
    pytest.param(lambda: "- a\n- b\n", r"expected a mapping of sections, got list", id="list"),
    pytest.param(
        lambda: "name: card_fraud\ndata: {bucket: [unclosed\n",
        r"not valid YAML at line 3, column 1",
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("build", "expected"), BROKEN)
def test_broken_spec_names_file_field_line_and_reason(tmp_path: Path, build, expected: str) -> None:
    path = write_spec(tmp_path, build())
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.splitlines()[0].endswith(f"in {path}"), message
    assert re.search(expected, message), message


def test_every_problem_is_reported_at_once_with_exact_lines(tmp_path: Path) -> None:
    text = DEMO.read_text()
    text = text.replace("epochs: 20", "epochs: 0").replace("window_days: 30", "window_days: x")
    lines = text.splitlines()
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith(f"2 problems in {path}")
    epochs_line = next(i for i, line in enumerate(lines, 1) if "epochs: 0" in line)
    window_line = next(i for i, line in enumerate(lines, 1) if "window_days: x" in line)
    assert f"model.hyperparameters.epochs (line {epochs_line}): got 0, expected " in message
    assert f"training.window_days (line {window_line}): got 'x'" in message


def test_a_guard_on_a_metric_not_trained_is_named(tmp_path: Path) -> None:
    # That a bad spec does not stop the good ones: tests/unit/plan/test_check_bounds.py.
    broken = mutate(lambda d: d.update(name="broken"))()
    broken["training"]["metrics"] = ["auc"]
    path = write_spec(tmp_path, broken, name="broken")
    with pytest.raises(SpecError, match=r"promotion\.guard_tolerances\.logloss"):
        load_spec(path)


def test_a_json_spec_loads_like_yaml_with_the_same_errors_and_lines(tmp_path: Path) -> None:
    import json

    path = tmp_path / "card_fraud.json"
    path.write_text(json.dumps({"$schema": "../pipeline.schema.json", **demo_document()}, indent=2))
    assert load_spec(path) == load_spec(DEMO)

    broken = demo_document()
    broken["training"]["epochs"] = 3  # belongs under model.hyperparameters
    text = json.dumps(broken, indent=2)
    path.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"epochs": 3' in row)
    with pytest.raises(SpecError, match=rf"training\.epochs \(line {line}\): unknown field"):
        load_spec(path)

    path.write_text(text.replace('"bucket":', "bucket:"))
    with pytest.raises(SpecError, match=r"not valid JSON at line \d+, column \d+"):
        load_spec(path)


def test_the_spec_schema_describes_every_section_for_editors() -> None:
    from loopline.spec.loader import spec_json_schema

    schema = spec_json_schema()
    assert {"$schema", "name", "data", "model", "streaming"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "data", "model"]


def test_the_shipped_schema_is_current() -> None:
    import json

    from loopline.spec.loader import spec_json_schema
    from support.paths import PROJECT_ROOT

    shipped = json.loads((PROJECT_ROOT / "include" / "pipeline.schema.json").read_text())
    assert shipped == spec_json_schema(), "run `loopline spec schema` to refresh it"


def test_a_pipeline_serving_online_may_run_more_replicas_than_partitions(tmp_path: Path) -> None:
    document = demo_document()
    document["streaming"]["replicas"]["max"] = 8
    document["streaming"]["serve"] = {"http_port": 9100, "grpc_port": 9101}
    spec = load_spec(write_spec(tmp_path, document))
    assert spec.streaming.replicas.max == 8 and spec.streaming.serve.http_port == 9100
    document["streaming"]["serve"] = {"http_port": 9100, "grpc_port": 9100}
    with pytest.raises(SpecError, match="http_port and grpc_port are both 9100"):
        load_spec(write_spec(tmp_path, document))
