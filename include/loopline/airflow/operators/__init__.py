"""Loopline's operators, named by the action they take."""

from loopline.airflow.operators.batch import BatchScoreOperator
from loopline.airflow.operators.demo import LandDemoBatchOperator
from loopline.airflow.operators.drift import (
    DriftAuditOperator,
    DriftReportOperator,
    RetrainOnDriftOperator,
)
from loopline.airflow.operators.replay import (
    ChooseReplayOperator,
    ReplayDeadLettersOperator,
    ReplayQuarantinedOperator,
)
from loopline.airflow.operators.shadow import (
    ApproveShadowPromotionOperator,
    JudgeShadowOperator,
    PromoteChallengerOperator,
    StartShadowOperator,
    StopShadowOperator,
)
from loopline.airflow.operators.streaming import (
    ChooseConsumerActionOperator,
    DeployConsumersOperator,
    MonitorConsumersOperator,
    RollConsumersOperator,
    ScaleConsumersOperator,
    StopConsumersOperator,
)
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
    "ApproveShadowPromotionOperator",
    "BatchScoreOperator",
    "ChooseConsumerActionOperator",
    "ChooseReplayOperator",
    "DeployConsumersOperator",
    "DriftAuditOperator",
    "DriftReportOperator",
    "GroupLandedOperator",
    "JudgeCandidateOperator",
    "JudgeShadowOperator",
    "LandDemoBatchOperator",
    "MonitorConsumersOperator",
    "PromoteChallengerOperator",
    "PromoteOperator",
    "PublishValidatedOperator",
    "ReplayDeadLettersOperator",
    "ReplayQuarantinedOperator",
    "RetrainOnDriftOperator",
    "RollConsumersOperator",
    "RollbackChampionOperator",
    "ScaleConsumersOperator",
    "StartShadowOperator",
    "StopConsumersOperator",
    "StopShadowOperator",
    "TrainModelOperator",
    "TrainingSnapshotOperator",
    "ValidateFilesOperator",
    "ValidationVerdictOperator",
    "WaitForLandedFilesSensor",
]
