"""Trainers: steps whose output is a trained model (``<output>/<trainer>/_model``).

``Trainer`` is the base of every trainer step and ``HFTrainer`` the base of
the Hugging Face ones (see their modules for how to write one).
"""

from .base import Trainer, TrainingRun, latest_checkpoint
from .hf_base import HFTrainer
from .train_hf_classifier import TrainHFClassifier
from .train_hf_dpo import TrainHFDPO
from .train_hf_fine_tune import AUTO, TrainHFFineTune
from .train_hf_grpo import TrainHFGRPO
from .train_hf_ppo import TrainHFPPO
from .train_hf_reward_model import TrainHFRewardModel
from .train_openai_finetune import TrainOpenAIFineTune
from .train_sentence_transformer import TrainSentenceTransformer
from .train_setfit_classifier import TrainSetFitClassifier
from .trained_models import load_trained_model, merge_adapter, trained_model_info, trained_model_kwargs

__all__ = [
    "AUTO",
    "HFTrainer",
    "TrainHFClassifier",
    "TrainHFDPO",
    "TrainHFFineTune",
    "TrainHFGRPO",
    "TrainHFPPO",
    "TrainHFRewardModel",
    "TrainOpenAIFineTune",
    "TrainSentenceTransformer",
    "TrainSetFitClassifier",
    "Trainer",
    "TrainingRun",
    "latest_checkpoint",
    "load_trained_model",
    "merge_adapter",
    "trained_model_info",
    "trained_model_kwargs",
]
