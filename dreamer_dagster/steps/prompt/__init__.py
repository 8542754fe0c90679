"""Prompt steps: generate, process, filter, rank and judge data with an LLM."""

from typing import TYPE_CHECKING

from ...lazy_exports import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "PromptStepBase": ".base",
    "PromptStepError": ".base",
    "DataFromAttributedPrompt": ".data_from_attributed_prompt",
    "DataFromPrompt": ".data_from_prompt",
    "FewShotPrompt": ".few_shot_prompt",
    "FilterWithPrompt": ".filter_with_prompt",
    "JudgeGenerationPairsWithPrompt": ".judge_generation_pairs_with_prompt",
    "JudgePairsWithPrompt": ".judge_pairs_with_prompt",
    "ProcessWithPrompt": ".process_with_prompt",
    "Prompt": ".prompt",
    "RankWithPrompt": ".rank_with_prompt",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
