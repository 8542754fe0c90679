"""The run loop of every LLM: prompts through the model cache and the backend's stream.

``LLM.run`` checks its arguments and hands the prompts to :func:`run_prompts`,
which keys each prompt (its occurrence among identical prompts counted by
digest), reads the cache in chunks, sends the misses through the backend's
``GenerationStream``, asks again for answers that do not parse under
``response_format``, yields results in input order with a bounded window
ahead of the output, stops sending once a step's budget is spent, and on any
ending (an error, an interrupt, a closed generator) writes the answers
received to the cache before it returns (:func:`end_stream`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Generator, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..cache import key_for, request_prefix
from ..occurrences import OccurrenceCounter
from . import response_format as response_formats
from .call_report import CallReport
from .estimate_stream import EstimateStream
from .request import GenerationRequest
from .run_options import RunOptions
from .stream import GenerationStream

if TYPE_CHECKING:
    from .llm import LLM

__all__ = ["end_stream", "run_prompts"]


def run_prompts(
    model: LLM,
    prompts: Iterator[str],
    params: dict,
    batch_size: int,
    response_format: Any,
    options: RunOptions | None = None,
) -> Generator[str | list[str] | None, None, None]:
    """``model``'s results for ``prompts`` in input order: cached ones read, the others sent
    through the backend's stream, every answer written to the cache (see :mod:`.llm`)."""
    options = options or RunOptions()
    identity = model.fingerprint_identity()
    prefix = request_prefix(identity, params)
    scope = model.scope
    estimating = scope is not None and scope.estimating
    if estimating:
        options = dataclasses.replace(options, retries=0, cache_only=False)  # empty answers never parse
    cache = model._open_cache(estimating)
    stats = model.stats if model.stats is not None else Counter()
    stats["model_calls"] += 0  # reported as 0 rather than left out
    stats["cache_hits"] += 0
    report = CallReport(repr(model), stats, scope, model.price())
    chunk_size = max(batch_size, 64)
    lookahead = max(model._lookahead(batch_size), 2 * chunk_size)
    occurrences = OccurrenceCounter()
    for prompt, count in (model.occurrence_base or {}).items():  # a shard's earlier prompts
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
                f"{model!r}: cache_only=True, but {len(misses)} prompts are not in the cache "
                f"(the first: {misses[0].prompt[:80]!r}). Fix: run without cache_only."
            )
        if stream is None:
            stream = (
                EstimateStream(params, scope.notes if scope else None)
                if estimating
                else model._open_stream(params, batch_size)
            )
            if cache is not None and not estimating:
                stream.write_answers_to(lambda: model._open_cache(estimating=False))
        stream.submit([model._prepare(request, params, response_format) for request in misses])

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
            raise scope.budget_error(repr(model), stats["model_calls"])
        if next_out != index:
            raise RuntimeError(f"{model!r}: {index - next_out} prompts got no result from the backend.")
        completed = True
    finally:
        try:
            if stream is not None:
                end_stream(model, stream, save, report, completed)
        finally:
            if cache is not None:
                cache.close()


def end_stream(model: LLM, stream: GenerationStream, save: Any, report: CallReport, completed: bool) -> None:
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
            report.scope.warning(f"{model!r}: could not save the answers received before the failure.")
        report.events(stream, final=True)
