"""`loopline spec check`: the same loading code path as the DAG factory."""

from __future__ import annotations

from pathlib import Path

from loopline.cli import main
from support.paths import PIPELINES, PROJECT_ROOT


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


def test_loopline_s3_has_one_meaning_and_the_mode_one_value(monkeypatch, tmp_path) -> None:
    import pytest
    from loopline.cli import object_store_for_cli

    monkeypatch.setenv("LOOPLINE_S3", "aws")  # the old spelling of LOOPLINE_S3_MODE=aws
    with pytest.raises(SystemExit, match=r"LOOPLINE_S3=aws is no longer read.*LOOPLINE_S3_MODE"):
        object_store_for_cli(tmp_path)  # a project without a stack: no client is made
    monkeypatch.delenv("LOOPLINE_S3")
    monkeypatch.setenv("LOOPLINE_S3_MODE", "local")
    with pytest.raises(SystemExit, match="LOOPLINE_S3_MODE='local': its one value is 'aws'"):
        object_store_for_cli(tmp_path)


def test_replay_start_offsets_are_partition_colon_offset() -> None:
    import pytest
    from loopline.commands.replay import start_offsets

    assert start_offsets(["0:1200", "2:0"]) == {0: 1200, 2: 0}
    with pytest.raises(SystemExit, match="'0-12': expected PARTITION:OFFSET"):
        start_offsets(["0-12"])
    with pytest.raises(SystemExit, match="0 or more"):
        start_offsets(["1:-5"])
