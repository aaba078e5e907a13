"""The stack brings up the pipelines the DAG files plan: the same folder, the same checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from loopline.stack import local
from support.paths import PIPELINES


def test_the_stack_reads_the_configured_folder_and_prints_a_bad_spec(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    pipelines = tmp_path / "elsewhere" / "pipelines"
    pipelines.mkdir(parents=True)
    shutil.copy(PIPELINES / "card_fraud.yaml", pipelines)
    shutil.copytree(PIPELINES.parent / "expectations", pipelines.parent / "expectations")
    spec = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    spec["name"] = "other"
    spec["data"].update(
        {f"{zone}_prefix": f"other/{zone}/" for zone in ("landing", "validated", "quarantine")},
        expectation_suite="no_such_suite",
    )
    spec["data"].pop("archive_prefix", None)
    spec["batch_inference"]["output_prefix"] = "other/predictions/"
    (pipelines / "other.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    monkeypatch.setenv("LOOPLINE_PIPELINES_DIR", str(pipelines))
    monkeypatch.delenv("LOOPLINE_EXPECTATIONS_DIR", raising=False)

    found = local.checked_pipelines(tmp_path / "project")  # no include/pipelines there

    assert [p.spec.name for p in found] == ["card_fraud"]
    assert {dag.dag_id for dag in found[0].dags} >= {"card_fraud.train", "card_fraud.validate"}
    out = capsys.readouterr().out
    assert "1 pipeline spec(s) left out" in out
    assert f"in {pipelines / 'other.yaml'}" in out
    assert "data.expectation_suite (line" in out and "no suite file" in out
