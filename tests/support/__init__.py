"""Helpers shared by the test tiers: plain modules, imported as ``support.<module>``.

Test modules import helpers from here, never from ``conftest`` (conftest holds fixtures and
hooks only). The benchmarks in ``bench/`` import ``support.servers`` and ``support.streams``
too, so nothing here may need pytest at import time.

- ``paths``: the project's folders (root, dags, pipelines).
- ``servers``: real servers in their own processes (S3, Kafka broker, Spark cluster).
- ``guard``: the unit tier's promise (no heavy library, no subprocess, no server), enforced.
- ``validated_data``, ``batch_world``, ``judged_versions``, ``bad_batches``, ``bombs``:
  data and worlds the tests build on S3.
- ``streams``: producing events and reading topics back.
- ``airflow_runs``: spec variants for the DAG files and what a run left in Airflow.
- ``fake_kubernetes``: a fake Kubernetes API server for the deployment tests.
"""
