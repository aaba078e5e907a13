"""Malformed or hostile spec files fail as that spec's own SpecError, quickly (security review
F13): before the bounds, deep nesting raised RecursionError past every guard, a 1 MB `[[[…`
crashed the interpreter, and an alias bomb took seconds growing exponentially."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from loopline.spec import SpecError, load_spec
from loopline.spec.loader import MAX_SPEC_BYTES, MAX_SPEC_DEPTH, MAX_SPEC_NODES
from support.paths import PIPELINES

QUICK_SECONDS = 1.0  # the old code took 5 s for the bomb below; the bounds answer in ms


def alias_bomb(width: int = 4, levels: int = 9) -> str:
    """Each level lists the one before `width` times: width**levels nodes from ~300 bytes."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "name: deep\ndata: " + "[" * depth + "]" * depth + "\n"


HOSTILE: list = [
    pytest.param("bomb.yaml", alias_bomb, rf"YAML aliases expand to more than {MAX_SPEC_NODES} "
                 r"nodes \(line \d+\)", id="alias-bomb"),
    pytest.param("deep.yaml", lambda: nested(5000),
                 rf"nesting deeper than {MAX_SPEC_DEPTH} levels at line 2", id="deep-yaml"),
    pytest.param("deep.json", lambda: '{"name": "deep", "data": ' + "[" * 5000 + "]" * 5000 + "}",
                 rf"nesting deeper than {MAX_SPEC_DEPTH} levels", id="deep-json"),
    pytest.param("loop.yaml", lambda: "name: loop\ndata: &a [*a]\n",
                 r"the YAML alias \*a at line 2 is inside its own anchor &a", id="self-alias"),
    pytest.param("big.yaml", lambda: "# padding\n" * (MAX_SPEC_BYTES // 10 + 1),
                 rf"the file is larger than {MAX_SPEC_BYTES} bytes", id="oversized-yaml"),
    pytest.param("big.json", lambda: json.dumps({"name": "big", "pad": "x" * MAX_SPEC_BYTES}),
                 rf"the file is larger than {MAX_SPEC_BYTES} bytes", id="oversized-json"),
    pytest.param("flat.yaml", lambda: "[" + "1, " * MAX_SPEC_NODES + "1]",
                 rf"the document has more than {MAX_SPEC_NODES} nodes", id="too-many-nodes"),
    pytest.param("digits.yaml", lambda: "name: digits\ndata: " + "1" * 5000 + "\n",
                 r"not valid YAML: Exceeds the limit \(4300 digits\)", id="huge-int-yaml"),
    pytest.param("digits.json", lambda: '{"name": "digits", "data": ' + "1" * 5000 + "}",
                 r"not valid JSON: Exceeds the limit \(4300 digits\)", id="huge-int-json"),
    pytest.param("month.yaml", lambda: "name: month\ndata: 2026-13-01\n",
                 r"not valid YAML: month must be in 1\.\.12", id="impossible-date"),
]  # fmt: skip


@pytest.mark.parametrize(("file_name", "build", "expected"), HOSTILE)
def test_a_hostile_spec_is_its_own_spec_error_named_and_quick(
    tmp_path: Path, file_name: str, build: Callable[[], str], expected: str
) -> None:
    path = tmp_path / file_name
    path.write_text(build())
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert message.splitlines()[0] == f"1 problem in {path}", message
    assert re.search(expected, message), message
    assert elapsed < QUICK_SECONDS, f"{file_name} took {elapsed:.2f} s to refuse"


def test_nesting_up_to_the_bound_parses_and_one_more_level_is_refused(tmp_path: Path) -> None:
    """`data:` is level 1, so MAX_SPEC_DEPTH - 1 brackets reach the bound exactly."""
    at_bound = tmp_path / "deep.yaml"
    at_bound.write_text(nested(MAX_SPEC_DEPTH - 1))
    with pytest.raises(SpecError) as caught:
        load_spec(at_bound)
    assert "nesting deeper" not in str(caught.value)  # refused by the schema, past the bound
    at_bound.write_text(nested(MAX_SPEC_DEPTH))
    with pytest.raises(SpecError, match=rf"nesting deeper than {MAX_SPEC_DEPTH} levels"):
        load_spec(at_bound)


def test_a_spec_that_uses_aliases_within_the_budget_still_loads(tmp_path: Path) -> None:
    text = (PIPELINES / "card_fraud.yaml").read_text()
    aliased = text.replace("name: card_fraud", "name: &pipeline card_fraud", 1).replace(
        "expectation_suite: card_fraud", "expectation_suite: *pipeline", 1
    )
    assert "*pipeline" in aliased and "&pipeline" in aliased  # the demo is laid out so
    path = tmp_path / "card_fraud.yaml"
    path.write_text(aliased)
    assert load_spec(path) == load_spec(PIPELINES / "card_fraud.yaml")
