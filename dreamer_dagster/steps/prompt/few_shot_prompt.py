"""``FewShotPrompt``: each input processed with in-context examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from ...citations import GPT2_CITATION
from .base import COMMON_ARGS, PromptStepBase, PromptStepError, labeled

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["FewShotPrompt"]


class FewShotPrompt(PromptStepBase):
    """Processes a set of inputs (input ``inputs``) with in-context examples (inputs
    ``input_examples`` and ``output_examples``) and an optional ``instruction``;
    writes columns ``inputs``, ``prompts`` and ``generations``.

    Each prompt is the instruction, then ``"<input_label> <example input><sep>
    <output_label> <example output>"`` for as many examples as fit the model's
    context (with ``max_new_tokens`` left; between ``min_in_context_examples`` and
    ``max_in_context_examples``), then ``"<input_label> <input><sep><output_label>"``.
    """

    CITATIONS: ClassVar = (GPT2_CITATION,)

    INPUTS: ClassVar = {"input_examples": True, "output_examples": True, "inputs": True}
    #: A shard takes a slice of the inputs; every shard sees all the examples.
    SHARD_INPUTS: ClassVar = ("inputs",)
    OUTPUTS: ClassVar = ("inputs", "prompts", "generations")
    ARGS: ClassVar = {
        **COMMON_ARGS,
        "input_label": "Input:",
        "output_label": "Output:",
        "instruction": None,
        "sep": "\n",
        "min_in_context_examples": None,
        "max_in_context_examples": None,
    }

    def validate(self) -> None:
        super().validate()
        for name in ("input_label", "output_label", "instruction", "sep"):
            self.check_label(name)
        self.check_int("min_in_context_examples", minimum=0, optional=True)
        self.check_int("max_in_context_examples", minimum=1, optional=True)
        low, high = self.args["min_in_context_examples"], self.args["max_in_context_examples"]
        if isinstance(low, int) and isinstance(high, int) and high < low:
            raise self.error(
                f"must be >= min_in_context_examples ({low}), got {high}.", "max_in_context_examples"
            )

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        sep, in_label, out_label = args["sep"], args["input_label"], args["output_label"]
        n_examples = self.input_length(context, "input_examples", "output_examples")
        examples = [
            labeled(in_label, example_in) + sep + labeled(out_label, example_out)
            for example_in, example_out in zip(
                self.iter_input(context, "input_examples"), self.iter_input(context, "output_examples")
            )
        ]
        if n_examples == 0:
            raise PromptStepError(
                f"Step {self.name!r} (FewShotPrompt): the in-context example inputs are empty."
            )
        beginning = args["instruction"] + sep if args["instruction"] is not None else None
        llm = context.model(self.args["llm"])
        total = self.input_length(context, "inputs")

        def prompts() -> Iterator[str]:
            for value in self.iter_input(context, "inputs"):
                end = labeled(in_label, value) + sep + (out_label or "")
                try:
                    yield llm.format_prompt(
                        max_new_tokens=args["max_new_tokens"],
                        beg_instruction=beginning,
                        in_context_examples=examples,
                        end_instruction=end,
                        sep=sep,
                        min_in_context_examples=args["min_in_context_examples"],
                        max_in_context_examples=args["max_in_context_examples"],
                    )
                except ValueError as error:
                    raise PromptStepError(f"Step {self.name!r} (FewShotPrompt): {error}") from error

        for value, (prompt, generation) in zip(
            self.iter_input(context, "inputs"), self.generate(context, prompts, total, args)
        ):
            yield {"inputs": value, "prompts": prompt, "generations": generation}
