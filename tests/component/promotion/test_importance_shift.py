"""Promotion records say which features moved the model: the candidate's stored importance
against the champion's, read from the registry on the real S3 server (no SHAP on the decision
path). Measuring is stood in for by numbers, as in `support.judged_versions`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from loopline.promotion import judge as judging
from loopline.promotion.manual import promote_manually
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHAMPION, ModelRegistry
from loopline.registry.importance import NOT_COMPUTED, FeatureImportance
from support.importances import stored_importance
from support.judged_versions import SCHEMA, SPEC, crown, empty_registry, judge_as, measured


def register(registry: ModelRegistry, tmp_path: Path, stored: FeatureImportance | None) -> int:
    folder = tmp_path / f"v{len(registry.versions(SPEC.name)) + 1}"
    folder.mkdir()
    (folder / "model.keras").write_text(folder.name)
    record = registry.register(
        SPEC.name, folder, metrics={}, input_schema=SCHEMA, importance=stored
    )
    return record.version


@pytest.fixture
def registry(s3, tmp_path):
    """Champion v1, which relies on amount most."""
    registry = empty_registry(s3)
    v1 = register(registry, tmp_path, stored_importance(amount=0.6, v1=0.3, v2=0.1))
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    return registry


def test_the_judge_and_promote_records_name_the_features_that_moved(
    registry, tmp_path, monkeypatch
) -> None:
    v2 = register(registry, tmp_path, stored_importance(amount=0.2, v1=0.3, v2=0.5))
    aucs = {1: 0.90, v2: 0.95}
    monkeypatch.setattr(judging, "measure", lambda _r, _s, version, _h: measured(aucs[version]))
    run = RunContext(SPEC.name, "r2", dag_id=f"{SPEC.name}.train")

    judgement = judging.judge(registry, SPEC, v2, pa.table({}), run)
    judging.apply_judgement(registry, SPEC, judgement, run)

    shift = judgement.importance_shift
    assert shift is not None and shift.computed
    assert [(c.feature, c.change) for c in shift.largest_changes[:2]] == [
        ("amount", -0.4),
        ("v2", 0.4),
    ]
    records = RecordStore(registry.store, SPEC.data.bucket)
    judged = records.read(SPEC.name, RecordStage.JUDGEMENT, "r2", subject=f"v{v2}")
    assert judged.payload["importance_shift"]["largest_changes"][0]["feature"] == "amount"
    promoted = records.read(SPEC.name, RecordStage.PROMOTION, "r2")
    assert promoted.verdict == CHAMPION
    assert (
        promoted.reasons[1] == shift.describe() and "amount -0.400, v2 +0.400" in shift.describe()
    )


def test_a_manual_promotion_of_a_version_without_importance_says_not_computed(
    registry, tmp_path
) -> None:
    v2 = register(registry, tmp_path, None)  # registered before importances were stored
    judge_as(registry, v2, auc=0.95, run_id="r2")

    _, record = promote_manually(registry, SPEC, v2, actor="cli:tester@host")

    assert record.payload["importance_shift"] == {
        "computed": False,
        "reason": f"the candidate's importance is {NOT_COMPUTED}",
        "largest_changes": [],
    }
    assert (
        record.reasons[-1]
        == f"feature importance shift: the candidate's importance is {NOT_COMPUTED}"
    )
