"""Estimated prices of OpenAI models, USD per million tokens (input, output).

Used only for ``stats["estimated_cost_usd"]`` of runs against OpenAI itself
(no ``base_url``); models missing here are not priced.
"""

from __future__ import annotations

__all__ = ["estimate_cost", "price_of"]

PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "davinci-002": (2.00, 2.00),
    "babbage-002": (0.40, 0.40),
}


def price_of(model_name: str) -> tuple[float, float] | None:
    """The price of a model or of its dated snapshot (``gpt-4o-2024-08-06`` is ``gpt-4o``)."""
    if model_name in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[model_name]
    for name in sorted(PRICES_PER_MILLION, key=len, reverse=True):
        rest = model_name[len(name) :]
        if model_name.startswith(name) and rest[:1] == "-" and rest[1:2].isdigit():
            return PRICES_PER_MILLION[name]
    return None


def estimate_cost(model_name: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    price = price_of(model_name)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
