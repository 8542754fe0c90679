"""Prompt steps: generate, process, filter, rank and judge data with an LLM."""

from .base import PromptStepBase, PromptStepError
from .data_from_attributed_prompt import DataFromAttributedPrompt
from .data_from_prompt import DataFromPrompt
from .few_shot_prompt import FewShotPrompt
from .filter_with_prompt import FilterWithPrompt
from .judge_generation_pairs_with_prompt import JudgeGenerationPairsWithPrompt
from .judge_pairs_with_prompt import JudgePairsWithPrompt
from .process_with_prompt import ProcessWithPrompt
from .prompt import Prompt
from .rank_with_prompt import RankWithPrompt

__all__ = [
    "DataFromAttributedPrompt",
    "DataFromPrompt",
    "FewShotPrompt",
    "FilterWithPrompt",
    "JudgeGenerationPairsWithPrompt",
    "JudgePairsWithPrompt",
    "Prompt",
    "PromptStepBase",
    "PromptStepError",
    "ProcessWithPrompt",
    "RankWithPrompt",
]
