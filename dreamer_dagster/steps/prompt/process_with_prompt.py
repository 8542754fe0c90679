"""``ProcessWithPrompt``: each input processed with one instruction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..step import REQUIRED
from .base import COMMON_ARGS, PromptStepBase, join_prompt, labeled

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["ProcessWithPrompt"]

LABEL_ARGS: dict[str, Any] = {"input_label": "Input:", "instruction_label": "Instruction:", "sep": "\n\n"}


class ProcessWithPrompt(PromptStepBase):
    """Processes a set of inputs (input ``inputs``) with an ``instruction`` and an LLM;
    writes columns ``inputs``, ``prompts`` and ``generations``.

    Each prompt is ``"<input_label> <input><sep><instruction_label> <instruction>"``.
    """

    INPUTS: ClassVar = {"inputs": True}
    OUTPUTS: ClassVar = ("inputs", "prompts", "generations")
    ARGS: ClassVar = {**COMMON_ARGS, "instruction": REQUIRED, **LABEL_ARGS}

    def validate(self) -> None:
        super().validate()
        for name in ("instruction", *LABEL_ARGS):
            self.check_label(name)

    def prompts(self, context: StepRunContext, args: dict[str, Any]) -> Iterator[str]:
        """The prompts, one per input, built as the inputs are read."""
        end = labeled(args["instruction_label"], args["instruction"])
        for value in self.iter_input(context, "inputs"):
            yield join_prompt(labeled(args["input_label"], value), (), end, args["sep"])

    def pairs(self, context: StepRunContext, args: dict[str, Any], **kwargs: Any) -> Iterator[tuple]:
        """``(input, prompt, generation)`` for each input, streamed."""
        total = self.input_length(context, "inputs")
        generated = self.generate(context, lambda: self.prompts(context, args), total, args, **kwargs)
        for value, (prompt, generation) in zip(self.iter_input(context, "inputs"), generated):
            yield value, prompt, generation

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        for value, prompt, generation in self.pairs(context, args):
            yield {"inputs": value, "prompts": prompt, "generations": generation}
