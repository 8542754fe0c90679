"""One LLM run's accounting: calls, tokens and cost into the step's stats; retries and
concurrency changes into the stats and, at a bounded rate, the run log.

Stats (``dreamer/<name>`` materialization metadata): ``model_calls``,
``refusals``, ``prompt_tokens``, ``completion_tokens``, ``reasoning_tokens`` (part of the
completion tokens, billed as output), ``cached_prompt_tokens``,
``usage_estimated_calls`` (answers without provider-reported usage, counted by
estimate), ``estimated_cost_usd`` (only where the model's price is known),
``retries`` and ``retries_<cause>``, ``concurrency_limit_min`` and
``concurrency_limit_final`` (adaptive API streams).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from ..call_scope import CallScope

if TYPE_CHECKING:
    from .generation_result import GenerationResult
    from .pricing import Price
    from .request import GenerationRequest
    from .stream import GenerationStream

__all__ = ["CallReport"]


class CallReport:
    """Counts one ``LLM.run``'s answered calls and its stream's events (see the module doc)."""

    def __init__(self, model: str, stats: Counter, scope: CallScope | None, price: Price | None):
        self.model = model
        self.stats = stats
        self.scope = scope if scope is not None else CallScope("", stats)
        self.price = price
        self._retries: Counter = Counter()
        self._notes: list[str] = []
        self._last_failure: str | None = None

    def count(self, done: list[tuple[GenerationRequest, GenerationResult]]) -> None:
        """Answered calls: one model call each, their tokens and, where priced, their cost."""
        if not done:
            return
        stats = self.stats
        stats["model_calls"] += len(done)
        refused = sum(text is None for _, result in done for text in result.texts)
        if refused:
            stats["refusals"] += refused
        for _, result in done:
            stats["prompt_tokens"] += result.prompt_tokens
            stats["completion_tokens"] += result.completion_tokens
            if result.reasoning_tokens:
                stats["reasoning_tokens"] += result.reasoning_tokens
            if result.cached_prompt_tokens:
                stats["cached_prompt_tokens"] += result.cached_prompt_tokens
            if result.usage_reported is False:
                stats["usage_estimated_calls"] += 1
            if self.price is not None:
                stats["estimated_cost_usd"] += self.price.cost(
                    result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens
                )
        if self.price is None:
            self.scope.note_unpriced(self.model)

    def events(self, stream: GenerationStream, final: bool = False) -> None:
        """Take the stream's retries and concurrency changes; log them at a bounded rate
        (and whatever is left unlogged when ``final``)."""
        counts, notes, last_failure = stream.take_events()
        if counts:
            self.stats.update(counts)
            self._retries.update(counts)
        self._notes.extend(notes)
        self._last_failure = last_failure or self._last_failure
        concurrency = stream.concurrency()
        if concurrency is not None:
            now, lowest, _ = concurrency
            previous = self.stats.get("concurrency_limit_min")
            self.stats["concurrency_limit_min"] = lowest if previous is None else min(previous, lowest)
            self.stats["concurrency_limit_final"] = now
        if (self._retries or self._notes) and (final or self.scope.throttled(id(self))):
            self.scope.info(self._message(concurrency))
            self._retries.clear()
            self._notes.clear()
            self._last_failure = None

    def _message(self, concurrency: tuple[int, int, int] | None) -> str:
        parts = []
        total = self._retries.get("retries", 0)
        if total:
            causes = ", ".join(
                f"{name.removeprefix('retries_')} {count}"
                for name, count in self._retries.most_common()
                if name != "retries"
            )
            last = f"; last: {self._last_failure}" if self._last_failure else ""
            parts.append(f"{total} retried calls since the last report ({causes}{last})")
        if concurrency is not None:
            now, lowest, maximum = concurrency
            text = f"concurrency limit {now} of {maximum} (lowest {lowest}"
            if self._notes:
                changes = len(self._notes)
                last_change = self._notes[-1].removeprefix("concurrency limit ")
                text += f"; {changes} change{'s' if changes > 1 else ''}, last: {last_change}"
            parts.append(text + ")")
        return f"{self.model}: " + "; ".join(parts) + "."
