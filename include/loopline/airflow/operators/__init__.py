"""Loopline's operators, named by the action they take."""

from loopline.airflow.operators.feed import LandDemoBatchOperator
from loopline.airflow.operators.validation import (
    ListObjectsOperator,
    PublishValidatedOperator,
    ValidateBatchOperator,
    ValidationVerdictOperator,
    WaitForLandedFilesSensor,
)

__all__ = [
    "LandDemoBatchOperator",
    "ListObjectsOperator",
    "PublishValidatedOperator",
    "ValidateBatchOperator",
    "ValidationVerdictOperator",
    "WaitForLandedFilesSensor",
]
