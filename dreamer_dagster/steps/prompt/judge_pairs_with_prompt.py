"""``JudgePairsWithPrompt``: an LLM judges which of two inputs is better."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ...citations import LLM_AS_A_JUDGE_CITATION
from .base import COMMON_ARGS, PromptStepBase, join_prompt, labeled

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["JudgePairsWithPrompt", "default_judgement_func"]


def swaps(randomize: bool) -> Iterator[bool]:
    """Whether each pair is shown swapped (b first): a fixed pseudo-random sequence."""
    rng = random.Random(1)
    while True:
        yield rng.randint(0, 1) == 1 if randomize else False


def default_judgement_func(a_label: str, b_label: str) -> Callable[[Any, bool], str]:
    """The default judgement: the label named in the generation; a tie is broken by a
    fixed pseudo-random sequence; a swapped pair's judgement is swapped back."""
    tie_break = random.Random(0)

    def judge(generation: Any, swapped: bool) -> str:
        text = str(generation)
        if a_label in text and b_label not in text:
            judgement = a_label
        elif b_label in text and a_label not in text:
            judgement = b_label
        else:
            judgement = b_label if tie_break.randint(0, 1) else a_label
        if swapped:
            judgement = a_label if judgement == b_label else b_label
        return judgement

    return judge


class JudgePairsWithPrompt(PromptStepBase):
    """Judges between pairs of inputs (inputs ``a`` and ``b``) with an ``instruction``
    and an LLM; writes columns ``a``, ``b``, ``judge_prompts``, ``judge_generations``
    and ``judgements`` (``"Input A"`` or ``"Input B"`` with the default labels).

    With ``randomize_order`` (the default) a fixed pseudo-random half of the pairs
    is shown swapped, against position bias; judgements always refer to the
    unswapped ``a`` / ``b``. ``judgement_func(generation, swapped)`` replaces the
    default parsing.
    """

    CITATIONS: ClassVar = (LLM_AS_A_JUDGE_CITATION,)

    INPUTS: ClassVar = {"a": True, "b": True}
    OUTPUTS: ClassVar = ("a", "b", "judge_prompts", "judge_generations", "judgements")
    ARGS: ClassVar = {
        **COMMON_ARGS,
        "instruction": None,
        "judgement_func": None,
        "randomize_order": True,
        "a_label": "Input A:",
        "b_label": "Input B:",
        "instruction_label": "Instruction:",
        "sep": "\n",
    }
    #: The default instruction's noun ("Which input is better?").
    SUBJECT: ClassVar[str] = "input"
    #: Input names read before ``a`` and ``b`` (the judged generations' prompts).
    LEADING_INPUTS: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        super().validate()
        for name in ("instruction", "a_label", "b_label", "instruction_label", "sep", "prompt_label"):
            self.check_label(name)
        if not isinstance(self.args["randomize_order"], bool):
            raise self.error("must be True or False.", "randomize_order")
        if self.args["judgement_func"] is not None and not callable(self.args["judgement_func"]):
            raise self.error("must be a function (generation, swapped) -> judgement.", "judgement_func")
        for name in ("a_label", "b_label"):
            if not isinstance(self.args[name], str) or not self.args[name].strip(":"):
                raise self.error("must be a non-empty string: judgements are parsed by it.", name)
        if self.args["a_label"].strip(":") == self.args["b_label"].strip(":"):
            raise self.error("a_label and b_label must differ.", "b_label")

    def leading_text(self, args: dict[str, Any], values: tuple) -> str | None:
        """What comes before the pair in the prompt (nothing here)."""
        return None

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        names = (*self.LEADING_INPUTS, "a", "b")
        total = self.input_length(context, *names)
        a_name, b_name = args["a_label"].strip(":"), args["b_label"].strip(":")
        instruction = args["instruction"] or (
            f"Which {self.SUBJECT} is better? Respond with '{a_name}' or '{b_name}'."
        )
        sep = args["sep"]
        end = sep + labeled(args["instruction_label"], instruction)
        judge = args["judgement_func"] or default_judgement_func(a_name, b_name)

        def rows() -> Iterator[tuple]:
            columns = [self.iter_input(context, name) for name in names]
            return zip(zip(*columns), swaps(args["randomize_order"]))

        def prompts() -> Iterator[str]:
            for values, swapped in rows():
                first, second = (values[-1], values[-2]) if swapped else (values[-2], values[-1])
                pair = labeled(args["a_label"], first) + sep + sep + labeled(args["b_label"], second)
                leading = self.leading_text(args, values)
                beginning = pair if leading is None else leading + sep + sep + pair
                yield join_prompt(beginning, (), end, sep)

        for (values, swapped), (prompt, generation) in zip(
            rows(), self.generate(context, prompts, total, args)
        ):
            row = dict(zip(names, values))
            row.update(
                {
                    "judge_prompts": prompt,
                    "judge_generations": generation,
                    "judgements": judge(generation, swapped),
                }
            )
            yield row
