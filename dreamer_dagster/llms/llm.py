"""The LLM base: one ``run`` for every backend, through the model cache.

A backend says what it is (``identity``), how it counts tokens and how long its
context is, and opens a ``GenerationStream`` that turns prompts into texts.
Everything else lives here, the same for every backend:

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

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from ..cache import ModelCache, key_for, request_prefix
from ..direct_calls import bind_direct, finish_direct, is_direct
from ..fingerprint import canonical
from ..model import Model
from ..occurrences import OccurrenceCounter
from . import response_format as response_formats
from .call_report import CallReport
from .estimate_stream import EstimateStream
from .generation_limits import generation_arg_problem
from .pricing import Price
from .request import GenerationRequest
from .stream import GenerationStream

__all__ = ["DEFAULT_BATCH_SIZE", "LLM", "RunOptions"]

DEFAULT_BATCH_SIZE = 10


@dataclass(frozen=True)
class RunOptions:
    """How one ``run`` goes (never what it returns for a cached prompt): outside the cache key."""

    force: bool = False
    cache_only: bool = False
    #: Times an answer that does not parse under ``response_format`` is asked again.
    retries: int = 0


class LLM(Model):
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

    #: Context length assumed where a backend does not know its model's.
    ASSUMED_CONTEXT_LENGTH = 4096

    # -- DataDreamer's LLM interface ------------------------------------------------

    def get_max_context_length(self, max_new_tokens: int) -> int:
        """The context length left for the prompt when ``max_new_tokens`` will be generated."""
        return (self._context_length() or self.ASSUMED_CONTEXT_LENGTH) - max_new_tokens

    def final_count_tokens(self, value: str | None) -> int:
        return 0 if not value else self.count_tokens(value)

    def _template_token_count(self) -> int:
        """Tokens the chat template adds around a prompt."""
        formatted = self._format_text("")
        return self._count_text_tokens(formatted) if formatted else 0

    def format_prompt(
        self,
        max_new_tokens: int | None = None,
        beg_instruction: str | None = None,
        in_context_examples: list[str] | None = None,
        end_instruction: str | None = None,
        sep: str = "\n",
        min_in_context_examples: int | None = None,
        max_in_context_examples: int | None = None,
    ) -> str:
        """``beg_instruction``, in-context examples and ``end_instruction`` joined by ``sep``,
        keeping as many examples (in order) as fit the context with ``max_new_tokens`` left."""
        examples = list(in_context_examples or [])
        if examples:
            min_in_context_examples = 1 if min_in_context_examples is None else min_in_context_examples
            max_in_context_examples = (
                len(examples) if max_in_context_examples is None else max_in_context_examples
            )
            if min_in_context_examples < 0:
                raise ValueError("min_in_context_examples cannot be negative.")
            if max_in_context_examples < min_in_context_examples:
                raise ValueError("max_in_context_examples cannot be less than min_in_context_examples.")
            if len(examples) < min_in_context_examples:
                raise ValueError(
                    f"Only {len(examples)} in-context examples were given; "
                    f"min_in_context_examples is {min_in_context_examples}."
                )
        budget = self.get_max_context_length(max_new_tokens or 0) - self._template_token_count()

        def build(chosen: list[str]) -> str:
            parts = chain(
                [beg_instruction] if beg_instruction is not None else [],
                chosen,
                [end_instruction] if end_instruction is not None else [],
            )
            return sep.join(parts)

        required = self.final_count_tokens(build([]))
        if examples and min_in_context_examples and budget - required <= self.final_count_tokens(sep):
            raise ValueError(
                "The prompt's instructions fill the model's context: no room is left for in-context examples."
            )
        if budget - required < 0:
            raise ValueError("The prompt's instructions exceed the model's context length.")
        chosen: list[str] = []
        for example in examples:
            if self.final_count_tokens(build([*chosen, example])) <= budget:
                chosen.append(example)
                if max_in_context_examples is not None and len(chosen) >= max_in_context_examples:
                    break
        if min_in_context_examples is not None and examples and len(chosen) < min_in_context_examples:
            raise ValueError(
                f"Cannot fit the minimum of {min_in_context_examples} in-context examples in the prompt "
                "without exceeding the model's context length."
            )
        return build(chosen)

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
        if int(response_format_retries) < 0:
            raise ValueError(f"response_format_retries must be >= 0 (got {response_format_retries}).")
        if response_format is not None:
            response_formats.check(response_format)
        if force and cache_only:
            raise ValueError("force=True and cache_only=True contradict each other: pick one.")
        options = RunOptions(
            force=bool(force), cache_only=bool(cache_only), retries=int(response_format_retries)
        )
        model = self
        if is_direct(self):  # called directly, not through a step: the session's cache
            model = bind_direct(self)
        results = model._run(iter(prompts), params, int(batch_size), response_format, options)
        if model is not self:
            results = finish_direct(results, model.cache_folder)
        if model.scope is not None:
            model.scope.track(results)  # closed by the step if an error leaves it open
        return results if return_generator else list(results)

    def _generation_params(
        self,
        max_new_tokens: int | None,
        temperature: float,
        top_p: float,
        n: int,
        stop: str | list[str] | None,
        repetition_penalty: float | None,
        logit_bias: dict[int, float] | None,
        seed: int | None,
        response_format: Any,
        **kwargs: Any,
    ) -> dict:
        """Every parameter that changes the output, normalized: the request part of the cache key."""
        self._check_bounds(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        return {
            "max_new_tokens": None if max_new_tokens is None else int(max_new_tokens),
            "temperature": float(temperature),
            "top_p": float(top_p),
            "n": int(n),
            "stop": stops,
            "repetition_penalty": None if repetition_penalty is None else float(repetition_penalty),
            "logit_bias": (
                None
                if not logit_bias
                else {str(int(token)): float(bias) for token, bias in sorted(logit_bias.items())}
            ),
            "seed": seed,
            "response_format": None
            if response_format is None
            else response_formats.identity(response_format),
            "kwargs": canonical(kwargs, "run kwargs"),
        }

    def _check_bounds(self, **values: Any) -> None:
        """A ``ValueError`` naming the argument and the fix for a value out of bounds."""
        for name, value in values.items():
            problem = generation_arg_problem(name, value, optional=name == "max_new_tokens")
            if problem is not None:
                raise ValueError(f"{type(self).__name__}.run(): {name} {problem}")

    @staticmethod
    def is_greedy(params: dict) -> bool:
        return params["temperature"] == 0.0 or params["top_p"] == 0.0

    # -- the run loop -----------------------------------------------------------------

    def _run(
        self,
        prompts: Iterator[str],
        params: dict,
        batch_size: int,
        response_format: Any,
        options: RunOptions | None = None,
    ) -> Generator[str | list[str] | None, None, None]:
        options = options or RunOptions()
        identity = self.fingerprint_identity()
        prefix = request_prefix(identity, params)
        scope = self.scope
        estimating = scope is not None and scope.estimating
        if estimating:
            options = dataclasses.replace(options, retries=0, cache_only=False)  # empty answers never parse
        cache = self._open_cache(estimating)
        stats = self.stats if self.stats is not None else Counter()
        stats["model_calls"] += 0  # reported as 0 rather than left out
        stats["cache_hits"] += 0
        report = CallReport(repr(self), stats, scope, self.price())
        chunk_size = max(batch_size, 64)
        lookahead = max(self._lookahead(batch_size), 2 * chunk_size)
        occurrences = OccurrenceCounter()
        for prompt, count in (self.occurrence_base or {}).items():  # a shard's earlier prompts
            occurrences.add(prompt, count)
        waiting: dict[int, Any] = {}  # input position -> the finished result
        # Answered and not yet in the cache (a stream that writes answers as they arrive
        # marks them ``in_cache``): written at once, and again in ``finally`` if an
        # interrupt lands between an answer's arrival and its write.
        received: list = []
        next_out = 0
        stream: GenerationStream | None = None
        index = 0
        stopped = False  # the step's budget is spent: nothing more is sent

        def lookup(requests: list[GenerationRequest]) -> list[Any]:
            if cache is None or options.force:
                return [None] * len(requests)
            return cache.get_many([r.key for r in requests])

        def send(misses: list[GenerationRequest]) -> None:
            nonlocal stream
            if not misses or stopped:
                return
            if options.cache_only:
                raise RuntimeError(
                    f"{self!r}: cache_only=True, but {len(misses)} prompts are not in the cache "
                    f"(the first: {misses[0].prompt[:80]!r}). Fix: run without cache_only."
                )
            if stream is None:
                stream = (
                    EstimateStream(params, scope.notes if scope else None)
                    if estimating
                    else self._open_stream(params, batch_size)
                )
                if cache is not None and not estimating:
                    stream.write_answers_to(lambda: self._open_cache(estimating=False))
            stream.submit([self._prepare(request, params, response_format) for request in misses])

        def save(done: list) -> None:
            received.extend(item for item in done if not item[1].in_cache)
            if cache is not None and not estimating and received:
                cache.put_many((request.key, result.texts) for request, result in received)
            received.clear()
            report.count(done)

        def accept(answered: list[tuple[GenerationRequest, list[str]]]) -> None:
            """Finish answered requests; an answer that does not parse is asked again."""
            while answered:
                retries: list[GenerationRequest] = []
                for request, texts in answered:
                    if response_format is None:
                        waiting[request.index] = texts[0] if params["n"] == 1 else list(texts)
                        continue
                    parsed = [response_formats.parse(text, response_format) for text in texts]
                    earlier = request.extra.get("parsed")
                    if earlier is not None:  # a retry fills the slots that failed before
                        fresh = iter(value for value in parsed if value is not None)
                        parsed = [value if value is not None else next(fresh, None) for value in earlier]
                    attempt = request.extra.get("retry", 0)
                    if any(value is None for value in parsed) and attempt < options.retries and not stopped:
                        stats["response_format_retries"] += 1
                        key = hashlib.sha256(f"{request.key}:retry".encode()).hexdigest()
                        retries.append(
                            GenerationRequest(
                                request.index,
                                request.prompt,
                                key,
                                int(key[:15], 16),
                                extra={"retry": attempt + 1, "parsed": parsed},
                            )
                        )
                        continue
                    stats["response_format_failures"] += sum(value is None for value in parsed)
                    waiting[request.index] = parsed[0] if params["n"] == 1 else parsed
                if not retries:
                    return
                cached = lookup(retries)
                stats["cache_hits"] += sum(value is not None for value in cached)
                send([request for request, value in zip(retries, cached) if value is None])
                answered = [(request, value) for request, value in zip(retries, cached) if value is not None]

        def collect(block: bool) -> None:
            nonlocal stopped
            assert stream is not None
            done = stream.poll(block)
            save(done)
            accept([(request, result.texts) for request, result in done])
            report.events(stream)
            if not stopped and not estimating and scope is not None and scope.over_budget():
                stopped = True
                stream.stop()

        completed = False
        try:
            while not stopped and (chunk := list(islice(prompts, chunk_size))):
                while stream is not None and stream.pending and index - next_out >= lookahead:
                    collect(block=True)
                    while next_out in waiting:
                        yield waiting.pop(next_out)
                        next_out += 1
                requests = []
                for prompt in chunk:
                    if not isinstance(prompt, str):
                        raise TypeError(f"Prompt #{index} is a {type(prompt).__name__}, not a string.")
                    key = key_for(prefix, prompt, occurrences.next(prompt))
                    requests.append(GenerationRequest(index, prompt, key, int(key[:15], 16)))
                    index += 1
                cached = lookup(requests)
                hits = [(request, value) for request, value in zip(requests, cached) if value is not None]
                stats["cache_hits"] += len(hits)
                send([request for request, value in zip(requests, cached) if value is None])
                accept(hits)
                if stream is not None and stream.pending:
                    collect(block=False)
                while next_out in waiting:
                    yield waiting.pop(next_out)
                    next_out += 1
            while stream is not None and stream.pending:
                collect(block=True)
                while next_out in waiting:
                    yield waiting.pop(next_out)
                    next_out += 1
            if stopped:
                assert scope is not None
                raise scope.budget_error(repr(self), stats["model_calls"])
            if next_out != index:
                raise RuntimeError(f"{self!r}: {index - next_out} prompts got no result from the backend.")
            completed = True
        finally:
            try:
                if stream is not None:
                    self._end_stream(stream, save, report, completed)
            finally:
                if cache is not None:
                    cache.close()

    def _end_stream(self, stream: GenerationStream, save: Any, report: CallReport, completed: bool) -> None:
        """Close the stream (nothing more is sent), then commit what arrived and was not
        collected, then report."""
        try:
            stream.close()
        finally:
            try:
                save(stream.drain())
            except Exception:
                if completed:
                    raise
                # The run is already failing; its own error is the one to see.
                report.scope.warning(f"{self!r}: could not save the answers received before the failure.")
            report.events(stream, final=True)

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
