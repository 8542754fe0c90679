"""The LLM base: one ``run`` for every backend, through the model cache.

A backend says what it is (``identity``), how it counts tokens and how long its
context is, and opens a ``GenerationStream`` that turns prompts into texts.
Everything else is the same for every backend (the loop in
:mod:`.run_loop`, the parameters in :mod:`.run_options`, DataDreamer's
``format_prompt`` in :mod:`.prompt_format`):

- the request: generation parameters normalized into the cache key, each
  prompt's occurrence index among identical prompts (so ``n`` identical
  prompts get ``n`` distinct cached answers; counted by digest, see
  :mod:`~dreamer_dagster.occurrences`, so a run's memory does not grow with
  its prompts' length)
  and a per-prompt seed derived
  from its key (so sampling does not depend on batch composition);
- the cache: looked up in chunks (``get_many``), written after every batch the
  backend finishes (``put_many``);
- order and memory: results are yielded in input order as soon as the prefix
  is complete, and at most a bounded window of prompts is ahead of the output,
  so a 200,000-prompt run streams with bounded memory;
- nothing answered is lost: whatever ends a run early (an error in the
  caller's code, an interrupt, a closed generator), the answers already
  received, collected or not, are written to the cache before it ends;
- money: calls are counted at the model's price (``price()``) from the
  provider's reported usage; with a step ``budget_usd`` (the bound
  :class:`~dreamer_dagster.call_scope.CallScope`) nothing more is sent once the
  step's spend reaches it, and the run fails with ``BudgetExceededError``;
- estimate-only mode (``scope.estimating``): cached prompts are read, the
  others are counted, not sent (see :mod:`~dreamer_dagster.cost`);
- counters in ``stats`` (see :mod:`~dreamer_dagster.llms.call_report`):
  ``model_calls``, ``cache_hits``, tokens, ``estimated_cost_usd``, retries,
  concurrency limits, ``response_format_failures``,
  ``response_format_retries`` and ``refusals`` (answers the model refused to
  give: None, cached as such).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from ..cache import ModelCache
from ..direct_calls import bind_direct, finish_direct, is_direct
from ..model import Model
from . import response_format as response_formats
from .pricing import Price
from .prompt_format import PromptFormatting
from .request import GenerationRequest
from .run_loop import run_prompts
from .run_options import RunOptions, check_bounds, generation_params, is_greedy, run_options
from .stream import GenerationStream

__all__ = ["DEFAULT_BATCH_SIZE", "LLM", "RunOptions"]

DEFAULT_BATCH_SIZE = 10


class LLM(PromptFormatting, Model):
    """Base of text-generation models (``HFTransformers``, ``OpenAI``, ``VLLM``...).

    Subclasses implement ``identity``, ``count_tokens``, ``_context_length`` and
    ``_open_stream``; ``run`` does the rest. Generations are cached in
    ``<output>/.cache/<cache_name>.db`` when the model is bound to a run.
    """

    DISPLAY_ICON = " 🧠 "  # DataDreamer's (model properties: ``model_info.ModelInfo``)

    #: Set on a run-time copy by a shard of a sharded step: how often each prompt came in the
    #: shards before it, so a repeated prompt is keyed (and answered) as in one unsharded run.
    occurrence_base: dict[str, int] | None = None

    def __init__(
        self,
        model_name: str,
        system_prompt: str | None = None,
        chat_prompt_template: str | None = None,
    ):
        self.model_name = model_name
        self.system_prompt = system_prompt
        self.chat_prompt_template = chat_prompt_template

    # -- what a backend provides ----------------------------------------------------

    def count_tokens(self, value: str) -> int:
        """The number of tokens in ``value``."""
        raise NotImplementedError(f"{type(self).__name__}.count_tokens")

    def _context_length(self) -> int | None:
        """The model's context length in tokens, or None when it is not known."""
        raise NotImplementedError(f"{type(self).__name__}._context_length")

    def _open_stream(self, params: dict, batch_size: int) -> GenerationStream:
        raise NotImplementedError(f"{type(self).__name__}._open_stream")

    def known_context_length(self) -> int | None:
        """The context length when it is known without loading anything (declaration
        checks use it); None otherwise."""
        return None

    def _format_text(self, prompt: str) -> str:
        """The text sent for ``prompt``: the chat template applied (``{{system_prompt}}``,
        ``{{prompt}}``) when there is one."""
        if self.chat_prompt_template:
            return self.chat_prompt_template.replace("{{system_prompt}}", self.system_prompt or "").replace(
                "{{prompt}}", prompt
            )
        return prompt

    def _count_text_tokens(self, text: str) -> int:
        """Tokens of an already formatted text, as the backend will send it."""
        return self.count_tokens(text) if text else 0

    def _lookahead(self, batch_size: int) -> int:
        """How many prompts may be in the backend or waiting in order beyond the output."""
        return 8 * max(batch_size, 64)

    def price(self) -> Price | None:
        """USD per million tokens of this model's calls, or None when unknown (local
        models, servers behind a ``base_url``): then no cost is counted, never a guess."""
        return None

    def run(
        self,
        prompts: Iterable[str],
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 0.0,
        n: int = 1,
        stop: str | list[str] | None = None,
        repetition_penalty: float | None = None,
        logit_bias: dict[int, float] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_scheduler_buffer_size: int | None = None,
        adaptive_batch_size: bool = False,
        seed: int | None = None,
        progress_interval: int | None = 60,
        force: bool = False,
        cache_only: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        total_num_prompts: int | None = None,
        return_generator: bool = False,
        *,
        response_format: Any = None,
        response_format_retries: int = 2,
        **kwargs: Any,
    ) -> list[str | list[str] | None] | Generator[str | list[str] | None, None, None]:
        """Generate for each prompt: a string (``n == 1``) or a list of ``n`` strings.

        ``temperature == 0`` or ``top_p == 0`` means greedy decoding (DataDreamer's
        convention; ``top_p`` defaults to 0). ``max_new_tokens=None`` lets a
        generation fill the rest of the context. ``response_format`` (a JSON
        schema dict or a pydantic model class) asks for JSON: each result is then
        the validated JSON text, or None where the output did not parse (counted
        in ``stats["response_format_failures"]``). With ``return_generator`` the
        results are yielded in input order as they complete.
        ``batch_size`` changes how prompts are grouped, never the results. ``seed`` goes to an
        API as given (DataDreamer's); a local model samples each prompt with a seed derived
        from it and the prompt's cache key, so results do not depend on the batches.

        Called directly (not through a step), the model uses DataDreamer's cache: its
        ``cache_folder_path``, else the open session's (``<output>/.cache``: the file and keys
        a step uses, so they share answers), else none (see :mod:`~dreamer_dagster.direct_calls`).

        DataDreamer's run settings change how a run goes, never what it returns,
        so none of them enters the cache key or the request:
        ``force=True`` reads nothing from the cache (every prompt is generated
        again and the cache overwritten); ``cache_only=True`` raises when a prompt
        is not cached instead of calling the model; ``adaptive_batch_size`` and
        ``batch_scheduler_buffer_size`` are accepted as DataDreamer takes them
        (local backends already halve a batch on out-of-memory and sort prompts
        by length in groups); ``progress_interval``, ``verbose``, ``log_level``
        and ``total_num_prompts`` are accepted too (a step reports its own
        progress). An answer that does not parse under ``response_format`` is
        asked again, as a new request, at most ``response_format_retries`` times
        before it becomes None (``stats["response_format_retries"]`` counts them).
        """
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string. Fix: run([prompt]).")
        params = self._generation_params(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            n=n,
            stop=stop,
            repetition_penalty=repetition_penalty,
            logit_bias=logit_bias,
            seed=seed,
            response_format=response_format,
            **kwargs,
        )
        self._check_bounds(batch_size=batch_size)
        options = run_options(force, cache_only, response_format_retries, response_format)
        model = self
        if is_direct(self):  # called directly, not through a step: the session's cache
            model = bind_direct(self)
        results = run_prompts(model, iter(prompts), params, int(batch_size), response_format, options)
        if model is not self:
            results = finish_direct(results, model.cache_folder)
        if model.scope is not None:
            model.scope.track(results)  # closed by the step if an error leaves it open
        return results if return_generator else list(results)

    def _generation_params(self, **params: Any) -> dict:
        """Every parameter that changes the output, normalized: the request part of the cache key
        (``run``'s generation arguments, by name; see :func:`.run_options.generation_params`)."""
        return generation_params(type(self).__name__, **params)

    def _check_bounds(self, **values: Any) -> None:
        """A ``ValueError`` naming the argument and the fix for a value out of bounds."""
        check_bounds(type(self).__name__, **values)

    is_greedy = staticmethod(is_greedy)

    def _open_cache(self, estimating: bool) -> ModelCache | None:
        if self.cache_folder is None:
            return None
        if estimating and not ModelCache.exists(self.cache_folder, self.cache_name()):
            return None  # an estimate writes nothing, not even an empty cache file
        return ModelCache(self.cache_folder, self.cache_name(), self.fingerprint_identity())

    def _prepare(self, request: GenerationRequest, params: dict, response_format: Any) -> GenerationRequest:
        """Format a prompt that must be generated and check that it fits the context."""
        prompt = request.prompt
        if response_format is not None and self._prompts_for_response_format():
            prompt = prompt + response_formats.instruction(response_format)
        request.text = self._format_text(prompt)
        request.prompt_tokens = self._count_text_tokens(request.text)
        context = self._context_length()
        if context is not None:
            needed = request.prompt_tokens + (params["max_new_tokens"] or 1)
            if needed > context:
                raise ValueError(
                    f"{self.model_name}: prompt #{request.index} has {request.prompt_tokens} tokens"
                    + (
                        f" and max_new_tokens is {params['max_new_tokens']}"
                        if params["max_new_tokens"]
                        else ""
                    )
                    + f", more than the model's context length of {context} tokens. "
                    "Fix: shorten the prompt or lower max_new_tokens."
                )
        return request

    def _prompts_for_response_format(self) -> bool:
        """Whether ``response_format`` is asked for in the prompt (backends without native support)."""
        return True

    @staticmethod
    def _apply_stop(text: str, stop: list[str]) -> str:
        """Cut at the first stop sequence and strip, as DataDreamer returns generations."""
        if stop:
            positions = [text.find(s) for s in stop if s and s in text]
            if positions:
                text = text[: min(positions)]
        return text.strip()
