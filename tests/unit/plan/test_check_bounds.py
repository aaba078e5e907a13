"""A hostile or crashing spec is its own error in check_pipelines, the path both DAG files
take; the good specs beside it still plan (security review F13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopline.plan import check as check_module
from loopline.plan.check import check_pipelines
from loopline.spec.loader import MAX_SPEC_DEPTH, MAX_SPEC_NODES

HOSTILE = {
    "deep.yaml": "name: deep\ndata: " + "[" * 5000 + "]" * 5000 + "\n",
    "bomb.yaml": "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else 'x'] * 4)}]\n" for i in range(10)
    ),
    "loop.yaml": "name: loop\ndata: &a [*a]\n",
}


def test_hostile_specs_are_their_own_errors_and_the_good_spec_still_plans(project: Path) -> None:
    for name, text in HOSTILE.items():
        (project / name).write_text(text)

    check = check_pipelines(project)

    assert [p.spec.name for p in check.pipelines] == ["card_fraud"]
    assert check.pipelines[0].dags
    reasons = {error.path.name: str(error) for error in check.errors}
    assert sorted(reasons) == sorted(HOSTILE)
    assert f"nesting deeper than {MAX_SPEC_DEPTH} levels" in reasons["deep.yaml"]
    assert f"YAML aliases expand to more than {MAX_SPEC_NODES} nodes" in reasons["bomb.yaml"]
    assert "alias *a at line 2 is inside its own anchor" in reasons["loop.yaml"]


def test_any_exception_while_checking_one_spec_is_that_spec_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last guard: whatever a future loader bug raises stays with its own file."""
    load_spec = check_module.load_spec
    broken = project / "broken.yaml"
    broken.write_text("name: broken\n")

    def crashing_load_spec(path: Path):
        if Path(path) == broken:
            raise RecursionError("maximum recursion depth exceeded")
        return load_spec(path)

    monkeypatch.setattr(check_module, "load_spec", crashing_load_spec)
    check = check_pipelines(project)

    assert [p.spec.name for p in check.pipelines] == ["card_fraud"]
    [error] = check.errors
    assert error.path == broken
    assert str(error) == (
        f"1 problem in {broken}\n"
        "  (top level): cannot be checked: RecursionError: maximum recursion depth exceeded"
    )
