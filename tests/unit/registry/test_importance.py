"""A version's stored feature importance and what promotion, drift and `models show` read of
it; a version registered before importances existed has none, and says so."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from loopline.commands.models import importance_lines
from loopline.registry import ModelVersion
from loopline.registry.importance import (
    NOT_COMPUTED,
    drifted_importance,
    importance_shift,
)
from support.importances import stored_importance


def version(**extra: object) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "name": "card_fraud",
            "version": 4,
            "created_at": datetime(2026, 11, 23, tzinfo=UTC),
            "metrics": {"auc": 0.9},
            "input_schema": [],
            "artifacts": {"model.keras": "0" * 64},
            "size_bytes": 10,
            **extra,
        }
    )


def test_features_rank_by_importance_with_their_share_of_the_total() -> None:
    stored = stored_importance(amount=0.3, v1=0.1, channel=0.1)
    assert stored.ranked() == [("amount", 0.3), ("channel", 0.1), ("v1", 0.1)]
    assert stored.shares() == pytest.approx({"amount": 0.6, "v1": 0.2, "channel": 0.2})
    assert "shap.Permutation (shap 0.51.0, max_evals 130)" in stored.describe()
    assert "64 holdout rows, background 32 rows, seed 0" in stored.describe()


def test_the_shift_names_the_features_that_moved_the_model_largest_first() -> None:
    champion = stored_importance(amount=0.5, v1=0.3, v2=0.2)
    candidate = stored_importance(amount=0.2, v1=0.3, v2=0.5)  # amount's weight went to v2

    shift = importance_shift(candidate, champion, top=2)

    assert shift.computed
    assert [(c.feature, c.change) for c in shift.largest_changes] == [
        ("amount", -0.3),
        ("v2", 0.3),
    ]
    assert shift.describe().endswith("amount -0.300, v2 +0.300")


@pytest.mark.parametrize("missing", ["candidate", "champion"])
def test_a_version_without_importance_makes_the_shift_not_computed(missing: str) -> None:
    known = stored_importance(amount=1.0)
    shift = importance_shift(
        None if missing == "candidate" else known, None if missing == "champion" else known
    )
    assert not shift.computed and shift.largest_changes == []
    assert shift.reason == f"the {missing}'s importance is {NOT_COMPUTED}"


def test_the_drifted_features_say_how_much_the_champion_relies_on_them() -> None:
    champion = stored_importance(amount=0.6, v1=0.3, v2=0.1)

    relied_on = drifted_importance(champion, ["v2", "amount", "added_later"], version=3)

    assert [(f.feature, f.rank, f.share) for f in relied_on.features] == [
        ("amount", 1, 0.6),
        ("v2", 3, 0.1),
    ]
    assert relied_on.total_share == pytest.approx(0.7)
    assert relied_on.describe().startswith("the drifted features carry 70.0% of champion v3's")
    none_drifted = drifted_importance(champion, [], version=3)
    assert none_drifted.total_share == 0 and "nothing the champion relies on" in (
        none_drifted.describe()
    )
    unknown = drifted_importance(None, ["amount"], version=2)
    assert not unknown.computed and unknown.reason == f"champion v2's importance is {NOT_COMPUTED}"


def test_a_version_registered_before_importances_reads_and_shows_not_computed() -> None:
    old = version()  # metadata written before the field existed
    assert old.importance is None
    assert importance_lines(old) == [f"feature importance: {NOT_COMPUTED}"]

    new = version(importance=stored_importance(amount=0.3, v1=0.1).model_dump())
    lines = importance_lines(new)
    assert lines[0].startswith("feature importance (v4): shap.Permutation")
    assert [line.split()[:2] for line in lines[1:]] == [["1.", "amount"], ["2.", "v1"]]
    assert lines[1].endswith("0.30000   75.0%")
