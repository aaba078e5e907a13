"""Loopline's operators, named by the action they take."""

from loopline.airflow.operators.batch import BatchScoreOperator
from loopline.airflow.operators.feed import LandDemoBatchOperator
from loopline.airflow.operators.training import (
    ApprovePromotionOperator,
    JudgeCandidateOperator,
    PromoteOperator,
    RollbackChampionOperator,
    TrainingSnapshotOperator,
    TrainModelOperator,
)
from loopline.airflow.operators.validation import (
    ListObjectsOperator,
    PublishValidatedOperator,
    ValidateBatchOperator,
    ValidationVerdictOperator,
    WaitForLandedFilesSensor,
)

__all__ = [
    "ApprovePromotionOperator",
    "BatchScoreOperator",
    "JudgeCandidateOperator",
    "LandDemoBatchOperator",
    "ListObjectsOperator",
    "PromoteOperator",
    "PublishValidatedOperator",
    "RollbackChampionOperator",
    "TrainModelOperator",
    "TrainingSnapshotOperator",
    "ValidateBatchOperator",
    "ValidationVerdictOperator",
    "WaitForLandedFilesSensor",
]
