"""``Prompt``: runs a column of prompts through an LLM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from .base import PromptStepBase

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["Prompt"]


class Prompt(PromptStepBase):
    """Runs a set of prompts (input ``prompts``) against an LLM; writes one row per
    prompt with columns ``prompts`` and ``generations``."""

    INPUTS: ClassVar = {"prompts": True}
    OUTPUTS: ClassVar = ("prompts", "generations")

    def run(self, context: StepRunContext) -> Iterator[dict]:
        total = self.input_length(context, "prompts")
        pairs = self.generate(context, lambda: self.iter_input(context, "prompts"), total)
        for prompt, generation in pairs:
            yield {"prompts": prompt, "generations": generation}
