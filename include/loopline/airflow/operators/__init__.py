"""Loopline's operators, named by the action they take."""

from loopline.airflow.operators.feed import LandDemoBatchOperator

__all__ = ["LandDemoBatchOperator"]
