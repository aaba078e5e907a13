"""The one check of `loopline spec check` and the DAG files: specs against each other too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from loopline.cli import main
from loopline.plan.check import check_pipelines
from support.paths import PIPELINES, PROJECT_ROOT


def add_spec(pipelines: Path, file_name: str, **data: str) -> Path:
    """The demo spec under another file name (and pipeline name), with `data` changed."""
    spec = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    spec["name"] = file_name.split(".")[0]
    spec["data"].update(data)
    if spec["name"] != "card_fraud":
        spec["batch_inference"]["output_prefix"] = f"{spec['name']}/predictions/"
        spec["data"].pop("archive_prefix")  # the default: archive/ beside the landing prefix
    path = pipelines / file_name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_second_file_of_the_same_pipeline_is_refused_and_the_first_kept(project: Path) -> None:
    second = add_spec(project, "card_fraud.yml")

    check = check_pipelines(project)

    assert [p.path.name for p in check.pipelines] == ["card_fraud.yaml"]
    [error] = check.errors
    assert error.path == second
    message = str(error)
    assert (
        f"name (line 1): pipeline 'card_fraud' is already defined by {project}/card_fraud.yaml"
        in message
    )
    assert "each pipeline has one spec file" in message


def test_pipelines_whose_data_prefixes_overlap_are_refused(project: Path) -> None:
    other = add_spec(project, "other.yaml", landing_prefix="card_fraud/landing/other/")
    add_spec(
        project,
        "third.yaml",
        **{f"{zone}_prefix": f"third/{zone}/" for zone in ("landing", "validated", "quarantine")},
    )

    check = check_pipelines(project)

    assert sorted(p.spec.name for p in check.pipelines) == ["card_fraud", "third"]
    [error] = check.errors
    assert error.path == other
    message = str(error)
    assert "data.landing_prefix (line" in message
    assert (
        "'card_fraud/landing/other/' overlaps data.landing_prefix 'card_fraud/landing/'" in message
    )
    assert "of pipeline 'card_fraud'" in message and "would take each other's files" in message


def test_the_cli_runs_the_same_check_and_writes_the_schema(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    add_spec(project, "card_fraud.yml")
    monkeypatch.setenv("LOOPLINE_PIPELINES_DIR", str(project))
    assert main(["--project", str(PROJECT_ROOT), "spec", "check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"ok   {project}/card_fraud.yaml: pipeline card_fraud -> card_fraud.")
    assert f"FAIL 1 problem in {project}/card_fraud.yml" in out

    schema = tmp_path / "pipeline.schema.json"
    assert main(["spec", "schema", "--output", str(schema)]) == 0
    assert json.loads(schema.read_text())["title"] == "Loopline pipeline spec"


def test_two_pipelines_serving_online_on_one_port_are_refused(project: Path) -> None:
    zones = ("landing", "validated", "quarantine")
    for name, serve in (("second", {"http_port": 9100, "grpc_port": 9101}),
                        ("third", {"http_port": 9200, "grpc_port": 9100})):  # fmt: skip
        path = add_spec(project, f"{name}.yaml", **{f"{z}_prefix": f"{name}/{z}/" for z in zones})
        spec = yaml.safe_load(path.read_text())
        spec["streaming"] |= {"input_topic": f"{name}.in", "output_topic": f"{name}.out",
                              "consumer_group": name, "serve": serve}  # fmt: skip
        path.write_text(yaml.safe_dump(spec, sort_keys=False))

    check = check_pipelines(project)

    assert sorted(p.spec.name for p in check.pipelines) == ["card_fraud", "second"]
    [error] = check.errors
    assert error.path == project / "third.yaml"
    assert "streaming.serve.grpc_port (line" in str(error)
    assert "port 9100 is also streaming.serve.http_port of pipeline 'second'" in str(error)
