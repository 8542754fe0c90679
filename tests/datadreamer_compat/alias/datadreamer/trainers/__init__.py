"""``datadreamer.trainers``."""

from dreamer_dagster.trainers import (
    Trainer,
    TrainHFClassifier,
    TrainHFDPO,
    TrainHFFineTune,
    TrainHFPPO,
    TrainHFRewardModel,
    TrainOpenAIFineTune,
    TrainSentenceTransformer,
    TrainSetFitClassifier,
)

__all__ = [
    "TrainHFClassifier",
    "TrainHFDPO",
    "TrainHFFineTune",
    "TrainHFPPO",
    "TrainHFRewardModel",
    "TrainOpenAIFineTune",
    "TrainSentenceTransformer",
    "TrainSetFitClassifier",
    "Trainer",
]
