"""Trainers: steps whose output is a trained model (``<output>/<trainer>/_model``).

``Trainer`` is the base of every trainer step and ``HFTrainer`` the base of
the Hugging Face ones (see their modules for how to write one).
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "Trainer": ".base",
    "TrainingRun": ".base",
    "latest_checkpoint": ".base",
    "HFTrainer": ".hf_base",
    "TrainHFClassifier": ".train_hf_classifier",
    "TrainHFDPO": ".train_hf_dpo",
    "AUTO": ".train_hf_fine_tune",
    "TrainHFFineTune": ".train_hf_fine_tune",
    "TrainHFGRPO": ".train_hf_grpo",
    "TrainHFPPO": ".train_hf_ppo",
    "TrainHFRewardModel": ".train_hf_reward_model",
    "TrainOpenAIFineTune": ".train_openai_finetune",
    "TrainSentenceTransformer": ".train_sentence_transformer",
    "TrainSetFitClassifier": ".train_setfit_classifier",
    "load_trained_model": ".trained_models",
    "merge_adapter": ".trained_models",
    "trained_model_info": ".trained_models",
    "trained_model_kwargs": ".trained_models",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
