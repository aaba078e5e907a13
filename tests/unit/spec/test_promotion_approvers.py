"""`promotion.approvers`: who may answer the approval step, checked when the spec loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from loopline.spec import SpecError, load_spec
from support.paths import PIPELINES


def spec_with(tmp_path: Path, **promotion: object) -> Path:
    document = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    document["promotion"].update(promotion)
    path = tmp_path / "card_fraud.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_approvers_load_with_the_approval_step(tmp_path: Path) -> None:
    spec = load_spec(spec_with(tmp_path, require_approval=True, approvers=["ana", "bo"]))
    assert spec.promotion.approvers == ["ana", "bo"]


def test_approvers_without_the_approval_step_are_refused(tmp_path: Path) -> None:
    path = spec_with(tmp_path, require_approval=False, approvers=["ana"])
    with pytest.raises(SpecError, match="require_approval is false: no one would be asked"):
        load_spec(path)


@pytest.mark.parametrize(
    ("approvers", "problem"), [(["ana", "ana"], "lists a user twice"), ([""], "at least 1")]
)
def test_a_repeated_or_empty_approver_is_refused(tmp_path, approvers, problem) -> None:
    path = spec_with(tmp_path, require_approval=True, approvers=approvers)
    with pytest.raises(SpecError, match=problem):
        load_spec(path)
