"""Loopline's operators, named by the action they take."""

from loopline.airflow.operators.batch import BatchScoreOperator
from loopline.airflow.operators.drift import DriftAuditOperator, RetrainOnDriftOperator
from loopline.airflow.operators.feed import LandDemoBatchOperator
from loopline.airflow.operators.streaming import DeployConsumersOperator, MonitorConsumersOperator
from loopline.airflow.operators.training import (
    ApprovePromotionOperator,
    JudgeCandidateOperator,
    PromoteOperator,
    RollbackChampionOperator,
    TrainingSnapshotOperator,
    TrainModelOperator,
)
from loopline.airflow.operators.validation import (
    GroupLandedOperator,
    PublishValidatedOperator,
    ValidateFilesOperator,
    ValidationVerdictOperator,
    WaitForLandedFilesSensor,
)

__all__ = [
    "ApprovePromotionOperator",
    "BatchScoreOperator",
    "DeployConsumersOperator",
    "DriftAuditOperator",
    "GroupLandedOperator",
    "JudgeCandidateOperator",
    "LandDemoBatchOperator",
    "MonitorConsumersOperator",
    "PromoteOperator",
    "PublishValidatedOperator",
    "RetrainOnDriftOperator",
    "RollbackChampionOperator",
    "TrainModelOperator",
    "TrainingSnapshotOperator",
    "ValidateFilesOperator",
    "ValidationVerdictOperator",
    "WaitForLandedFilesSensor",
]
