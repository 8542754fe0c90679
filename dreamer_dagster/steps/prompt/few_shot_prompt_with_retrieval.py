"""``FewShotPromptWithRetrieval``: each input processed with its k most similar examples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from ...citations import NEAREST_NEIGHBOR_CITATION
from ..step import REQUIRED
from .base import PromptStepError, labeled
from .few_shot_prompt import FewShotPrompt

if TYPE_CHECKING:
    from ...retrievers.embedding_retriever import EmbeddingRetriever
    from ..run_context import StepRunContext

__all__ = ["FewShotPromptWithRetrieval"]


class FewShotPromptWithRetrieval(FewShotPrompt):
    """Processes a set of inputs (input ``inputs``) with the ``k`` in-context examples
    (inputs ``input_examples`` / ``output_examples``) most similar to each input,
    retrieved by embedding similarity with the ``embedder`` arg; writes columns
    ``inputs``, ``prompts`` and ``generations``.

    The prompt layout is ``FewShotPrompt``'s, the retrieved examples best first
    (as many as fit the model's context). The example inputs and the inputs are
    embedded through the embedder's model cache, and each input's retrieval is
    cached too (``<output>/.cache/EmbeddingRetriever-<hash>.db``).
    """

    CITATIONS: ClassVar = (*FewShotPrompt.CITATIONS, NEAREST_NEIGHBOR_CITATION)

    ARGS: ClassVar = {**FewShotPrompt.ARGS, "embedder": REQUIRED, "k": REQUIRED}

    def validate(self) -> None:
        super().validate()
        from ...embedders.embedder import Embedder

        if not isinstance(self.args["embedder"], Embedder):
            raise self.error(
                f"must be an Embedder (such as default_embedder()), got {type(self.args['embedder']).__name__}.",
                "embedder",
            )
        self.check_int("k", minimum=1)

    def retriever(self) -> EmbeddingRetriever:
        """The retriever over the example inputs (its texts load when the step runs)."""
        from ...retrievers.embedding_retriever import EmbeddingRetriever

        return EmbeddingRetriever(texts=self.inputs["input_examples"], embedder=self.args["embedder"])

    def run(self, context: StepRunContext) -> Iterator[dict]:
        args = self.run_args(context)
        sep, in_label, out_label = args["sep"], args["input_label"], args["output_label"]
        if self.input_length(context, "input_examples", "output_examples") == 0:
            raise PromptStepError(
                f"Step {self.name!r} (FewShotPromptWithRetrieval): the in-context example inputs are empty."
            )
        example_inputs = list(self.iter_input(context, "input_examples"))
        example_outputs = list(self.iter_input(context, "output_examples"))
        beginning = args["instruction"] + sep if args["instruction"] is not None else None
        llm = context.model(self.args["llm"])
        total = self.input_length(context, "inputs")
        retriever = context.model(self.retriever())
        # generate() reads the prompts twice; the second reading finds every retrieval
        # in the cache and is not counted again.
        readings = [retriever]
        quiet = retriever.for_run(retriever.cache_folder, Counter())

        def prompts() -> Iterator[str]:
            current = readings.pop() if readings else quiet
            results = current.run(self.iter_input(context, "inputs"), k=args["k"], return_generator=True)
            for value, result in zip(self.iter_input(context, "inputs"), results):
                examples = [
                    labeled(in_label, example_inputs[index])
                    + sep
                    + labeled(out_label, example_outputs[index])
                    for index in result["indices"]
                ]
                try:
                    yield llm.format_prompt(
                        max_new_tokens=args["max_new_tokens"],
                        beg_instruction=beginning,
                        in_context_examples=examples,
                        end_instruction=labeled(in_label, value) + sep + (out_label or ""),
                        sep=sep,
                        min_in_context_examples=args["min_in_context_examples"],
                        max_in_context_examples=args["max_in_context_examples"],
                    )
                except ValueError as error:
                    raise PromptStepError(
                        f"Step {self.name!r} (FewShotPromptWithRetrieval): {error}"
                    ) from error

        for value, (prompt, generation) in zip(
            self.iter_input(context, "inputs"), self.generate(context, prompts, total, args)
        ):
            yield {"inputs": value, "prompts": prompt, "generations": generation}
