"""Loopline: an MLOps loop on Apache Airflow 3.

The package holds the logic of every stage of the loop as plain Python, testable without a
scheduler. ``loopline.airflow`` is the thin Airflow layer over it; nothing else imports Airflow.
"""

__version__ = "0.1.0"
