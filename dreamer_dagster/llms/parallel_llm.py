"""One step's prompts spread over several copies of one model (e.g. one per GPU)."""

from __future__ import annotations

from ..model_info import ParallelInfo
from ..pools import device_pool
from .llm import LLM
from .parallel_stream import ParallelStream
from .pricing import Price

__all__ = ["ParallelLLM"]


class ParallelLLM(ParallelInfo, LLM):
    """Runs one ``run`` call across ``llms``, which must share one identity.

    ``ParallelLLM(HFTransformers(name, device=0), HFTransformers(name, device=1))``:
    prompts go, a batch at a time, to whichever model has the least work; the
    results, the fingerprint and the cache are those of a single model, so a
    step can switch between one model and several without re-running.
    """

    def __init__(self, *llms: LLM):
        if not llms:
            raise ValueError("ParallelLLM needs at least one LLM.")
        for llm in llms:
            if not isinstance(llm, LLM) or isinstance(llm, ParallelLLM):
                raise TypeError(f"ParallelLLM takes LLM objects, not {type(llm).__name__}.")
        identities = {llm.model_fingerprint for llm in llms}
        if len(identities) > 1:
            raise ValueError(
                "ParallelLLM's models must have one identity (same class, model, parameters); "
                f"got {[llm.fingerprint_identity() for llm in llms]}."
            )
        first = llms[0]
        super().__init__(
            first.model_name,
            system_prompt=first.system_prompt,
            chat_prompt_template=first.chat_prompt_template,
        )
        self.llms = list(llms)

    def identity(self) -> dict:
        return self.llms[0].identity()

    def fingerprint_identity(self) -> dict:
        declared = self.__dict__.get("_declared_identity")
        return declared if declared is not None else self.llms[0].fingerprint_identity()

    def cache_name(self) -> str:
        return self.llms[0].cache_name()

    def default_pool(self) -> str | None:
        """The models' common pool; for local copies on several devices, one pool for them all."""
        pools = list(dict.fromkeys(llm.dagster_pool() for llm in self.llms))
        if len(pools) == 1:
            return pools[0]
        return device_pool([getattr(llm, "device", None) for llm in self.llms])

    def dagster_kinds(self) -> tuple[str, ...]:
        return self.llms[0].dagster_kinds()

    def count_tokens(self, value: str) -> int:
        return self.llms[0].count_tokens(value)

    def _count_text_tokens(self, text: str) -> int:
        return self.llms[0]._count_text_tokens(text)

    def _context_length(self) -> int | None:
        return self.llms[0]._context_length()

    def _format_text(self, prompt: str) -> str:
        return self.llms[0]._format_text(prompt)

    def _prompts_for_response_format(self) -> bool:
        return self.llms[0]._prompts_for_response_format()

    def price(self) -> Price | None:
        return self.llms[0].price()

    def _lookahead(self, batch_size: int) -> int:
        return sum(llm._lookahead(batch_size) for llm in self.llms)

    def _open_stream(self, params: dict, batch_size: int) -> ParallelStream:
        return ParallelStream([llm._open_stream(params, batch_size) for llm in self.llms], batch_size)

    def unload_model(self) -> None:
        for llm in self.llms:
            llm.unload_model()

    def __repr__(self) -> str:
        return f"ParallelLLM({', '.join(repr(llm) for llm in self.llms)})"
