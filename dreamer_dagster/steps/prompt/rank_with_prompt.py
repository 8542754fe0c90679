"""``RankWithPrompt``: scores rows with an LLM, then sorts and filters by the score."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from ...citations import LLM_AS_A_JUDGE_CITATION
from .process_with_prompt import ProcessWithPrompt

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["RankWithPrompt", "parse_score"]

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_score(generation: Any) -> int | float | None:
    """The first number in a generation (an int unless it has a decimal point), or None."""
    match = _NUMBER.search(str(generation))
    if match is None:
        return None
    text = match.group()
    return float(text) if "." in text else int(text)


class RankWithPrompt(ProcessWithPrompt):
    """Scores the rows of the step that produced ``inputs``: each input is processed
    with the ``instruction`` and the first number in the (post-processed)
    generation is its score. Rows are sorted by score (highest first unless
    ``reverse=False``; ``sort=False`` keeps their order) and, with
    ``score_threshold``, rows scoring below it (or with no score) are dropped.

    Writes every column of the input's step plus ``scores``.
    """

    CITATIONS: ClassVar = (LLM_AS_A_JUDGE_CITATION,)

    OUTPUTS: ClassVar = None
    #: Not sharded: its rows are sorted across all inputs.
    SHARD_BY: ClassVar = None
    ARGS: ClassVar = {**ProcessWithPrompt.ARGS, "sort": True, "reverse": True, "score_threshold": None}

    def validate(self) -> None:
        super().validate()
        for name in ("sort", "reverse"):
            if not isinstance(self.args[name], bool):
                raise self.error(f"must be True or False, got {self.args[name]!r}.", name)
        self.check_number("score_threshold")
        columns = self.inputs["inputs"].step.output_columns
        if columns is not None and "scores" in columns:
            raise self.error(
                "the input's step already has a 'scores' column. Fix: rename it first "
                "(step.rename_column('scores', ...)).",
                "inputs['inputs']",
            )

    def declared_columns(self) -> list[str] | None:
        columns = self.inputs["inputs"].step.output_columns
        return None if columns is None else [*columns, "scores"]

    def run(self, context: StepRunContext) -> Any:
        args = self.run_args(context)
        post_process = args["post_process"]

        def score(generation: Any) -> int | float | None:
            return parse_score(post_process(generation) if post_process is not None else generation)

        scores = [generation for _, _, generation in self.pairs(context, args, post_process=score)]
        scores = [None if value is None else float(value) for value in scores]
        context.stats["rows_without_score"] += sum(value is None for value in scores)
        order = list(range(len(scores)))
        if args["sort"]:
            sign = -1.0 if args["reverse"] else 1.0
            # Stable: equal scores keep their input order; rows without a score go last.
            order.sort(key=lambda i: (scores[i] is None, 0.0 if scores[i] is None else sign * scores[i]))
        threshold = args["score_threshold"]
        if threshold is not None:
            order = [i for i in order if scores[i] is not None and scores[i] >= threshold]
        dataset = context.dataset(self.inputs["inputs"].step).add_column("scores", scores)
        return dataset.select(order)
