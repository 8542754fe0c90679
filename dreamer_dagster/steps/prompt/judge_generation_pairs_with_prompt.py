"""``JudgeGenerationPairsWithPrompt``: an LLM judges which of two responses to a prompt is better."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import labeled
from .judge_pairs_with_prompt import JudgePairsWithPrompt

__all__ = ["JudgeGenerationPairsWithPrompt"]


class JudgeGenerationPairsWithPrompt(JudgePairsWithPrompt):
    """Judges between pairs of generations (inputs ``a`` and ``b``) produced for
    ``prompts``, with an ``instruction`` and an LLM; writes columns ``prompts``,
    ``a``, ``b``, ``judge_prompts``, ``judge_generations`` and ``judgements``
    (``"Response A"`` or ``"Response B"`` with the default labels).

    The order of each pair is randomized as in ``JudgePairsWithPrompt``.
    """

    INPUTS: ClassVar = {"prompts": True, "a": True, "b": True}
    OUTPUTS: ClassVar = ("prompts", "a", "b", "judge_prompts", "judge_generations", "judgements")
    ARGS: ClassVar = {
        **JudgePairsWithPrompt.ARGS,
        "prompt_label": "Prompt:",
        "a_label": "Response A:",
        "b_label": "Response B:",
    }
    SUBJECT: ClassVar[str] = "response"
    LEADING_INPUTS: ClassVar[tuple[str, ...]] = ("prompts",)

    def leading_text(self, args: dict[str, Any], values: tuple) -> str | None:
        """The prompt the pair answers: ``"<prompt_label> <prompt>"``."""
        return labeled(args["prompt_label"], values[0])
