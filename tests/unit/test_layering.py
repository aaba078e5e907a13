"""The package's imports run one way: Airflow glue -> plan -> stages -> shared layers.

Read from the source of every module (``import`` statements, lazy ones inside functions
included), so the guard costs milliseconds and covers modules nobody imports yet.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "include" / "loopline"
STAGES = {
    *("validation", "training", "promotion", "batch", "demo", "drift", "streaming"),
    "trace",  # reads every stage's outputs, through the shared layers only
}
# May import anything below them: the Airflow glue and the dev tools (the doctor checks what
# every stage needs, with each one's own settings).
# telemetry: the stack's exporter, which reads records, the registry and the replicas'
# heartbeats (a stage's files) to serve them as metrics.
TOP = {"airflow", "stack", "cli", "commands", "doctor", "telemetry"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    """(top-level part of the package, file) for every module."""
    return [
        (path.relative_to(PACKAGE).parts[0].removesuffix(".py"), path)
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_the_walk_sees_every_part_of_the_package() -> None:
    parts = {part for part, _ in modules()}
    assert {"airflow", "plan", "records", "data", "serving", "validation", "batch"} <= parts
    assert len(modules()) > 60


def test_nothing_below_the_airflow_layer_imports_airflow() -> None:
    leaks = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for part, path in modules()
        if part != "airflow"
        for name in imports_of(path)
        if name.split(".")[0] == "airflow"
    ]
    assert leaks == []


def test_stages_do_not_import_each_other_and_nothing_imports_upward() -> None:
    wrong = []
    for part, path in modules():
        for name in imports_of(path):
            target = name.split(".")[1] if name.startswith("loopline.") else None
            if target is None or target == part:
                continue
            if part in STAGES and target in STAGES:
                wrong.append(f"{path.relative_to(PACKAGE)} -> {target} (stage to stage)")
            if part not in TOP and target in TOP:
                wrong.append(f"{path.relative_to(PACKAGE)} -> {target} (upward)")
            if part not in TOP | {"plan"} and target == "plan":
                wrong.append(f"{path.relative_to(PACKAGE)} -> plan (upward)")
    assert wrong == []
