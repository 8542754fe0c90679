"""``FilterWithPrompt``: keeps the rows an LLM says yes to."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from ...citations import LLM_AS_A_JUDGE_CITATION
from ..user_code import call_user
from .process_with_prompt import ProcessWithPrompt

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["FilterWithPrompt", "says_yes"]

_YES = re.compile(r"\byes\W*\b", re.IGNORECASE)


def says_yes(generation: Any) -> bool:
    """The default filter: the generation contains the word "yes"."""
    return bool(_YES.search(str(generation)))


class FilterWithPrompt(ProcessWithPrompt):
    """Filters the rows of the step that produced ``inputs``: each input is processed
    with the ``instruction`` (as in ``ProcessWithPrompt``) and the row is kept when
    ``filter_func(generation)`` is true (default: the generation says "yes").

    Writes every column of the input's step, only the kept rows, in their order
    (a failed row, see ``max_failed_rows``, is removed).
    """

    CITATIONS: ClassVar = (LLM_AS_A_JUDGE_CITATION,)

    OUTPUTS: ClassVar = None
    FILTERS_ROWS: ClassVar = True
    ARGS: ClassVar = {**ProcessWithPrompt.ARGS, "filter_func": None}

    def validate(self) -> None:
        super().validate()
        if self.args["filter_func"] is not None and not callable(self.args["filter_func"]):
            raise self.error("must be a function taking a generation and returning a bool.", "filter_func")

    def declared_columns(self) -> list[str] | None:
        return self.inputs["inputs"].step.output_columns

    def run(self, context: StepRunContext) -> Any:
        args = self.run_args(context)
        keep = args["filter_func"] or says_yes
        kept = [
            index
            for index, (_, _, generation) in enumerate(self.pairs(context, args))
            # A failed row (None) is removed, never passed to filter_func.
            if generation is not None and call_user(self, "filter_func", index, keep, generation)
        ]
        context.stats["rows_kept"] += len(kept)
        context.stats["rows_removed"] += self.input_length(context, "inputs") - len(kept)
        return context.dataset(self.inputs["inputs"].step).select(kept)
