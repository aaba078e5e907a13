"""Airflow import error for every Loopline pipeline spec that cannot become DAGs.

Holds no DAG on purpose: when a spec is broken, this file fails to import with a message
naming the spec file, the field, its line and the reason, and loopline_pipelines.py still
builds the DAGs of every good spec.
"""

from pathlib import Path

from loopline.spec import pipelines_folder, raise_for_bad_specs

raise_for_bad_specs(pipelines_folder(Path(__file__).resolve().parents[1] / "include" / "pipelines"))
