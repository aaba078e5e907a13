"""Airflow DAGs of every Loopline pipeline spec under include/pipelines/.

Adding a model is adding a spec there; this file only wires. Specs that fail to load are
reported by loopline_spec_check.py and do not stop the others.
"""

from pathlib import Path

from loopline.airflow.factory import build_dags
from loopline.spec import pipelines_folder

PIPELINES = pipelines_folder(Path(__file__).resolve().parents[1] / "include" / "pipelines")

globals().update(build_dags(PIPELINES))
