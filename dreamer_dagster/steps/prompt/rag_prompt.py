"""``RAGPrompt``: each prompt answered with the k most relevant retrieved texts in context."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from ...citations import REALM_CITATION
from ..step import REQUIRED
from .base import COMMON_ARGS, PromptStepBase, PromptStepError, labeled

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["RAGPrompt"]


class RAGPrompt(PromptStepBase):
    """Processes a set of prompts (input ``prompts``) with the ``k`` texts the
    ``retriever`` finds most relevant to each; writes columns ``prompts`` (the
    full prompts sent to the LLM) and ``generations``.

    Each prompt is the optional ``instruction``, then ``"<retrieved_text_label>
    <text>"`` for the retrieved texts, best first (as many as fit the model's
    context with ``max_new_tokens`` left; between ``min_in_context_retrieved_texts``
    and ``max_in_context_retrieved_texts``), then a blank line and
    ``"<prompt_label> <prompt>"``, joined by ``sep``. A retriever over another
    step's column makes that step an upstream dependency; retrievals go through
    the retriever's model cache.
    """

    CITATIONS: ClassVar = (REALM_CITATION,)

    INPUTS: ClassVar = {"prompts": True}
    OUTPUTS: ClassVar = ("prompts", "generations")
    ARGS: ClassVar = {
        **COMMON_ARGS,
        "retriever": REQUIRED,
        "k": REQUIRED,
        "retrieved_text_label": "Document:",
        "prompt_label": "Question:",
        "instruction": None,
        "sep": "\n",
        "min_in_context_retrieved_texts": None,
        "max_in_context_retrieved_texts": None,
    }

    def validate(self) -> None:
        super().validate()
        from ...retrievers.retriever import Retriever

        if not isinstance(self.args["retriever"], Retriever):
            raise self.error(
                f"must be a Retriever (such as EmbeddingRetriever(...)), got "
                f"{type(self.args['retriever']).__name__}.",
                "retriever",
            )
        self.check_int("k", minimum=1)
        for name in ("retrieved_text_label", "prompt_label", "instruction", "sep"):
            self.check_label(name)
        self.check_int("min_in_context_retrieved_texts", minimum=0, optional=True)
        self.check_int("max_in_context_retrieved_texts", minimum=1, optional=True)
        low = self.args["min_in_context_retrieved_texts"]
        high = self.args["max_in_context_retrieved_texts"]
        if isinstance(low, int) and isinstance(high, int) and high < low:
            raise self.error(
                f"must be >= min_in_context_retrieved_texts ({low}), got {high}.",
                "max_in_context_retrieved_texts",
            )

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        sep, text_label, prompt_label = args["sep"], args["retrieved_text_label"], args["prompt_label"]
        beginning = args["instruction"] + sep if args["instruction"] is not None else None
        llm = context.model(self.args["llm"])
        total = self.input_length(context, "prompts")
        retriever = context.model(self.args["retriever"])
        # generate() reads the prompts twice; the second reading finds every retrieval
        # in the cache and is not counted again.
        readings = [retriever]
        quiet = retriever.for_run(retriever.cache_folder, Counter())

        def prompts() -> Iterator[str]:
            current = readings.pop() if readings else quiet
            results = current.run(self.iter_input(context, "prompts"), k=args["k"], return_generator=True)
            for value, result in zip(self.iter_input(context, "prompts"), results):
                try:
                    yield llm.format_prompt(
                        max_new_tokens=args["max_new_tokens"],
                        beg_instruction=beginning,
                        in_context_examples=[labeled(text_label, text) for text in result["texts"]],
                        end_instruction=sep + labeled(prompt_label, value),
                        sep=sep,
                        min_in_context_examples=args["min_in_context_retrieved_texts"],
                        max_in_context_examples=args["max_in_context_retrieved_texts"],
                    )
                except ValueError as error:
                    raise PromptStepError(f"Step {self.name!r} (RAGPrompt): {error}") from error

        for prompt, generation in self.generate(context, prompts, total, args):
            yield {"prompts": prompt, "generations": generation}
