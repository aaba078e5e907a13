"""Airflow import error for every Loopline pipeline spec that cannot become DAGs.

Holds no DAG on purpose: when a spec is broken (it does not load, names a missing suite, or
cannot be planned), this file fails to import with a message naming the spec file, the
field, its line and the reason, and loopline_pipelines.py still builds the DAGs of every good
spec. The check is the one ``loopline spec check`` runs.
"""

from pathlib import Path

from loopline.plan.check import check_pipelines
from loopline.spec import pipelines_folder

PIPELINES = pipelines_folder(Path(__file__).resolve().parents[1] / "include" / "pipelines")

check_pipelines(PIPELINES).raise_for_errors()
