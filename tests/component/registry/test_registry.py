"""The model registry on a real S3 server: versions, checksums, aliases under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from loopline.registry import (
    CHAMPION,
    AliasConflict,
    CorruptModelError,
    ModelRegistry,
    RegistryError,
)
from support.judged_versions import placeholder_artifacts

BUCKET = "loopline"


def register(registry: ModelRegistry, tmp_path: Path, content: str, auc: float = 0.9):
    return registry.register(
        "fraud",
        placeholder_artifacts(tmp_path, content),
        metrics={"auc": auc},
        input_schema=[{"name": "amount", "type": "float32"}],
        lineage={"dag_id": "fraud.train", "run_id": f"run-{content}"},
    )


def promote(registry: ModelRegistry, version: int, expected: int | None):
    return registry.move_alias(
        "fraud", CHAMPION, version, expected=expected, action="promote", reason="test", by="test"
    )


def test_versions_are_numbered_and_keep_their_files_and_lineage(registry, tmp_path) -> None:
    first = register(registry, tmp_path, "a", auc=0.81)
    second = register(registry, tmp_path, "b", auc=0.84)
    assert (first.version, second.version) == (1, 2)
    assert [v.metrics["auc"] for v in registry.versions("fraud")] == [0.81, 0.84]
    assert set(second.artifacts) == {
        "model.keras",
        "saved_model/saved_model.pb",
        "saved_model/variables/variables.index",
    }
    fetched = registry.download("fraud", 2, tmp_path / "out")
    assert fetched.lineage["run_id"] == "run-b"
    assert (tmp_path / "out" / "model.keras").read_text() == "weights of b"


def test_a_corrupt_artifact_is_refused_naming_the_file(registry, tmp_path) -> None:
    register(registry, tmp_path, "a")
    key = "models/fraud/versions/000001/model.keras"
    registry.store.put(BUCKET, key, b"flipped bits", "application/octet-stream")
    with pytest.raises(CorruptModelError, match=r"fraud version 1: model.keras is corrupt"):
        registry.download("fraud", 1, tmp_path / "out")


def test_concurrent_registrations_get_distinct_versions(registry, tmp_path) -> None:
    folders = [placeholder_artifacts(tmp_path, f"m{i}") for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        records = list(
            pool.map(
                lambda folder: registry.register(
                    "fraud", folder, metrics={}, input_schema=[], lineage={}
                ),
                folders,
            )
        )
    assert sorted(r.version for r in records) == [1, 2, 3, 4, 5, 6]
    for record in records:
        registry.download("fraud", record.version, tmp_path / f"check{record.version}")


def test_an_alias_moves_only_from_the_version_the_caller_saw(registry, tmp_path) -> None:
    for content in "abc":
        register(registry, tmp_path, content)
    promote(registry, 1, expected=None)
    with pytest.raises(AliasConflict, match="points at 1, not None"):
        promote(registry, 2, expected=None)
    promote(registry, 2, expected=1)
    assert registry.alias("fraud", CHAMPION) == 2
    with pytest.raises(RegistryError, match="no version 9"):
        promote(registry, 9, expected=2)


def test_concurrent_promotions_leave_one_winner_and_a_consistent_history(
    registry, tmp_path
) -> None:
    for content in "abcdefgh":
        register(registry, tmp_path, content)
    promote(registry, 1, expected=None)

    def try_promote(version: int) -> int | None:
        try:
            return promote(registry, version, expected=1).version
        except AliasConflict:
            return None

    with ThreadPoolExecutor(7) as pool:
        outcomes = list(pool.map(try_promote, range(2, 9)))
    winners = [version for version in outcomes if version is not None]
    assert len(winners) == 1
    history = registry.history("fraud", CHAMPION)
    assert [move.sequence for move in history] == [1, 2]
    assert history[-1].version == winners[0] == registry.alias("fraud", CHAMPION)
    assert history[-1].previous == 1


def test_rollback_walks_back_one_promotion_at_a_time(registry, tmp_path) -> None:
    for content in "abc":
        register(registry, tmp_path, content)
    promote(registry, 1, expected=None)
    promote(registry, 2, expected=1)
    promote(registry, 3, expected=2)
    assert registry.rollback("fraud", reason="bad scores", by="cli").version == 2
    assert registry.rollback("fraud", reason="still bad", by="cli").version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("fraud", reason="again", by="cli")
    moves = registry.history("fraud", CHAMPION)
    assert [(m.action, m.version, m.previous) for m in moves] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
    ]


def test_the_models_command_lists_shows_promotes_and_rolls_back(
    registry, tmp_path, s3, monkeypatch, capsys
) -> None:
    from loopline.cli import main
    from support.paths import PROJECT_ROOT

    for env, value in s3.cli_environment().items():
        monkeypatch.setenv(env, value)
    model = ModelRegistry(registry.store, BUCKET)
    for content in "ab":
        model.register(
            "card_fraud",
            placeholder_artifacts(tmp_path, content),
            metrics={"auc": 0.8},
            input_schema=[],
        )

    def models(*args: str) -> tuple[int, str]:
        code = main(["--project", str(PROJECT_ROOT), "models", *args])
        return code, capsys.readouterr().out

    # Never judged by the train DAG: only a forced promotion moves them (tests/unit/promotion).
    force = ("--force", "--reason", "test")
    code, out = models("promote", "card_fraud", "1", "--force", "--reason", "first")
    assert code == 0 and out.startswith("card_fraud@champion: None -> 1 (FORCED promotion by cli:")
    assert models("promote", "card_fraud", "2", *force)[0] == 0
    code, listing = models("list", "card_fraud")
    assert code == 0 and "      2  " in listing and "champion" in listing
    code, shown = models("show", "card_fraud", "champion")
    assert code == 0 and '"version": 2' in shown and "champion#2: 1 -> 2 promote" in shown
    assert models("rollback", "card_fraud") == (0, "card_fraud@champion: 2 -> 1 (rollback)\n")
    code, out = models("promote", "card_fraud", "7")
    assert code == 1 and "card_fraud has no version 7" in out

    # The forced promotions are records; the CLI's rollback is not (yet).
    assert (
        main(["--project", str(PROJECT_ROOT), "records", "card_fraud", "--stage", "rollback"]) == 0
    )
    assert capsys.readouterr().out == "card_fraud: no records yet\n"
    from loopline.promotion.judge import roll_back_champion
    from loopline.records import RunContext
    from loopline.spec import load_spec

    spec = load_spec(PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml")
    assert models("promote", "card_fraud", "2", *force)[0] == 0
    roll_back_champion(model, spec, "scores look wrong", RunContext("card_fraud", "manual__9"))
    assert (
        main(["--project", str(PROJECT_ROOT), "records", "card_fraud", "--stage", "rollback"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert "rollback       rolled_back" in lines[1] and lines[1].endswith("manual__9")
    assert lines[2].strip() == "- scores look wrong"
