"""``DataFromPrompt``: ``n`` rows generated from one instruction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar

from ..step import REQUIRED
from .base import COMMON_ARGS, PromptStepBase, is_deferred

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["DataFromPrompt"]


class DataFromPrompt(PromptStepBase):
    """Generates ``n`` rows of data from one ``instruction`` with an LLM; writes
    columns ``prompts`` (the instruction) and ``generations``.

    The instruction is sent ``n`` times; the model cache keys each repeat by its
    occurrence, so the rows differ (sampling at ``temperature`` 1.0 and ``top_p``
    1.0 by default) and a re-run returns the same rows.
    """

    OUTPUTS: ClassVar = ("prompts", "generations")
    ARGS: ClassVar = {**COMMON_ARGS, "instruction": REQUIRED, "n": REQUIRED, "temperature": 1.0, "top_p": 1.0}
    LLM_ARGS: ClassVar = tuple(name for name in PromptStepBase.LLM_ARGS if name != "n")

    SHARD_BY: ClassVar = "n"

    def shard_occurrences(self, context: StepRunContext, prompts: Any) -> Counter:
        """Every row asks the same instruction: the shards before this one asked it once a row."""
        return Counter({self.run_args(context)["instruction"]: context.shard.start})

    def validate(self) -> None:
        super().validate()
        self.check_int("n", minimum=1)
        instruction = self.args["instruction"]
        if not is_deferred(instruction) and (not isinstance(instruction, str) or not instruction):
            raise self.error("must be a non-empty string.", "instruction")

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        instruction, n = args["instruction"], args["n"]
        for prompt, generation in self.generate(context, lambda: repeat(instruction, n), n, args):
            yield {"prompts": prompt, "generations": generation}
