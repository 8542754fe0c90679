"""Prices of OpenAI's models, USD per million tokens, and the cost of a call.

The table is OpenAI's published list price (input, cached input, output). A
model missing here, and any model behind a ``base_url`` (a self-hosted or
third-party server), has no price: its cost is None, never a guess.
Reasoning tokens are billed as output tokens (OpenAI counts them inside
``completion_tokens``); cached input tokens are billed at the cached price
where the table has one, else as plain input.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRICES_PER_MILLION", "Price", "estimate_cost", "price_of"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def scaled(self, factor: float) -> Price:
        """This price times ``factor`` (the Batch API's half price)."""
        cached = None if self.cached_input is None else self.cached_input * factor
        return Price(self.input * factor, self.output * factor, cached)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0) -> float:
        """USD for one call's usage (``cached_prompt_tokens`` are part of ``prompt_tokens``)."""
        cached = min(max(0, cached_prompt_tokens), prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (prompt_tokens - cached) * self.input + cached * cached_price + completion_tokens * self.output
        ) / 1_000_000


PRICES_PER_MILLION: dict[str, Price] = {
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.00),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "davinci-002": Price(2.00, 2.00),
    "babbage-002": Price(0.40, 0.40),
}


def price_of(model_name: str) -> Price | None:
    """The price of a model or of its dated snapshot (``gpt-4o-2024-08-06`` is ``gpt-4o``)."""
    if model_name in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model_name]
    for name in sorted(PRICES_PER_MILLION, key=len, reverse=True):
        rest = model_name[len(name) :]
        if model_name.startswith(name) and rest[:1] == "-" and rest[1:2].isdigit():
            return PRICES_PER_MILLION[name]
    return None


def estimate_cost(model_name: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for ``prompt_tokens`` in and ``completion_tokens`` out, or None when unpriced."""
    price = price_of(model_name)
    return None if price is None else price.cost(prompt_tokens, completion_tokens)
