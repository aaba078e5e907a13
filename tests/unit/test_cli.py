"""`loopline spec check`: the same loading code path as the DAG factory."""

from __future__ import annotations

from pathlib import Path

from conftest import PIPELINES, PROJECT_ROOT
from loopline.cli import main


def test_check_passes_on_the_shipped_specs(capsys) -> None:
    assert main(["--project", str(PROJECT_ROOT), "spec", "check"]) == 0
    assert "ok   " in capsys.readouterr().out


def test_check_fails_and_explains_a_bad_spec(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "card_fraud.yaml"
    bad.write_text((PIPELINES / "card_fraud.yaml").read_text().replace("rows: 5000", "rows: 0"))
    assert main(["spec", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL 1 problem in {bad}" in out
    assert "demo.rows (line" in out and "greater than or equal to 1" in out
