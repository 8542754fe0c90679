"""``DataFromAttributedPrompt``: ``n`` rows from an instruction templated with attributes."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ...citations import ATTRPROMPT_CITATION
from ..step import REQUIRED
from .base import COMMON_ARGS, PromptStepBase, PromptStepError, is_deferred

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["DataFromAttributedPrompt", "attribute_names", "fill_attributes"]


_VARIABLE = re.compile(r"{([a-zA-Z0-9:_\.]+)}")


def attribute_names(instruction: str) -> list[str]:
    """The ``{name}`` variables of an instruction (``{{`` and ``}}`` are literal braces)."""
    names: list[str] = []
    for part in re.split(r"{{|}}", instruction):
        names.extend(name for name in _VARIABLE.findall(part) if name not in names)
    return names


def fill_attributes(instruction: str, values: Mapping[str, Any]) -> str:
    """The instruction with each ``{name}`` replaced by its value."""
    if not values:
        return instruction
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda match: str(values[match.group(0)[1:-1]]), instruction)


class DataFromAttributedPrompt(PromptStepBase):
    """Generates ``n`` rows from an ``instruction`` with ``{attribute}`` variables
    (AttrPrompt, arXiv 2306.15895); writes columns ``attributes`` (the values used
    for the row), ``prompts`` and ``generations``.

    ``attributes`` is a dict of lists (every combination is used, cycling until
    there are ``n`` rows) or a list of dicts (those combinations, cycled). Values
    may be deferred, such as ``step.output["generations"][0].split(",")``.
    """

    CITATIONS: ClassVar = (ATTRPROMPT_CITATION,)

    OUTPUTS: ClassVar = ("attributes", "prompts", "generations")
    #: Not sharded: its rows are combinations of attributes, not slices of an input.
    SHARD_BY: ClassVar = None
    ARGS: ClassVar = {
        **COMMON_ARGS,
        "instruction": REQUIRED,
        "attributes": REQUIRED,
        "n": REQUIRED,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    LLM_ARGS: ClassVar = tuple(name for name in PromptStepBase.LLM_ARGS if name != "n")

    def validate(self) -> None:
        super().validate()
        self.check_int("n", minimum=1)
        instruction = self.args["instruction"]
        attributes = self.args["attributes"]
        if is_deferred(instruction) or is_deferred(attributes):
            return
        if not isinstance(instruction, str) or not instruction:
            raise self.error("must be a non-empty string with {attribute} variables.", "instruction")
        try:
            self.check_attributes(attributes, attribute_names(instruction), declaring=True)
        except ValueError as error:
            raise self.error(str(error), "attributes") from None

    @staticmethod
    def check_attributes(attributes: Any, names: list[str], declaring: bool = False) -> None:
        """Raise ValueError unless ``attributes`` fit the instruction's variables."""
        if isinstance(attributes, Mapping):
            combinations = [attributes]
            for name, values in attributes.items():
                if is_deferred(values) and declaring:
                    continue
                if not isinstance(values, (list, tuple)) or not values:
                    raise ValueError(f"the values of {name!r} must be a non-empty list, got {values!r}.")
        elif isinstance(attributes, (list, tuple)) and attributes:
            combinations = list(attributes)
            if not all(isinstance(c, Mapping) for c in combinations):
                raise ValueError("a list of attributes must hold one dict per combination.")
        else:
            raise ValueError(
                "give a dict of lists ({'tone': ['serious', 'funny']}) or a non-empty list of dicts."
            )
        for combination in combinations:
            if sorted(combination) != sorted(names):
                raise ValueError(
                    f"the attribute names {sorted(combination)} do not match the instruction's "
                    f"variables {sorted(names)}."
                )

    @staticmethod
    def combinations(attributes: Any) -> Iterator[dict]:
        """The attribute combinations, cycled forever (cartesian product for a dict)."""
        if isinstance(attributes, Mapping):
            names = list(attributes)
            combos = [dict(zip(names, values)) for values in itertools.product(*attributes.values())]
        else:
            combos = [dict(combination) for combination in attributes]
        return itertools.cycle(combos)

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        instruction, attributes, n = args["instruction"], args["attributes"], args["n"]
        names = attribute_names(instruction)
        try:
            self.check_attributes(attributes, names)
        except ValueError as error:
            raise PromptStepError(
                f"Step {self.name!r} ({type(self).__name__}): attributes: {error}"
            ) from None

        def prompts() -> Iterator[str]:
            for combination in itertools.islice(self.combinations(attributes), n):
                yield fill_attributes(instruction, combination)

        combos = itertools.islice(self.combinations(attributes), n)
        for combination, (prompt, generation) in zip(combos, self.generate(context, prompts, n, args)):
            yield {"attributes": combination, "prompts": prompt, "generations": generation}
