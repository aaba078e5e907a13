"""The project's folders, as the tests and benchmarks see them."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT_ROOT / "dags"
PIPELINES = PROJECT_ROOT / "include" / "pipelines"
