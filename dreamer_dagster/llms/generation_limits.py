"""The bounds of the generation arguments, checked where a prompt step is declared and where
``LLM.run`` is called, so a typo fails at once instead of sending requests without end.

A value is refused only where no backend takes it:

- ``n``: a whole number from 1 to :data:`MAX_N` (100,000,000). As a step's row count
  (``DataFromPrompt``) a hundred million rows is a run of more than a day at 1,000
  requests a second; as completions per prompt, OpenAI takes at most 128 (vLLM and
  ``transformers`` take more). Split a larger job into steps and ``concat`` them.
- ``max_new_tokens``: None (the rest of the context) or 1 to :data:`MAX_NEW_TOKENS`
  (10,000,000): no model has a longer context (Llama 4 Scout's is 10M tokens; OpenAI's
  and Anthropic's outputs stop at 128K), and a model can never generate more tokens
  than its context holds.
- ``batch_size``: 1 to :data:`MAX_BATCH_SIZE` (1,000,000). A batch is read ahead in
  memory (8 batches for an API model); no backend runs a million sequences at once.
- ``temperature``: a finite number >= 0 (0: greedy). No upper bound: OpenAI takes up
  to 2, Anthropic up to 1, but ``transformers`` and vLLM take any positive value.
- ``top_p``: a finite number in [0, 1] (0: greedy, DataDreamer's convention).

NaN and the infinities are refused everywhere: JSON has no such values, so an API
request would carry non-standard JSON.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

__all__ = ["MAX_BATCH_SIZE", "MAX_N", "MAX_NEW_TOKENS", "generation_arg_problem"]

MAX_N = 100_000_000
MAX_NEW_TOKENS = 10_000_000
MAX_BATCH_SIZE = 1_000_000

#: name -> (the largest whole number it takes, the fix when it is over).
_WHOLE: dict[str, tuple[int, str]] = {
    "n": (MAX_N, "lower n; for more rows, declare several steps and concat(...) them"),
    "max_new_tokens": (
        MAX_NEW_TOKENS,
        "set the most tokens one generation may have (such as 512), or None for the rest of the context",
    ),
    "batch_size": (MAX_BATCH_SIZE, "use a batch size such as 10 to 1,000"),
}
#: name -> (lowest, highest or None, the fix).
_REAL: dict[str, tuple[float, float | None, str]] = {
    "temperature": (0.0, None, "use 0 for greedy decoding, or a value such as 0.7 or 1.0"),
    "top_p": (0.0, 1.0, "use a value in [0, 1], such as 0.9 (0: greedy)"),
}


def generation_arg_problem(name: str, value: Any, optional: bool = True) -> str | None:
    """What is wrong with generation argument ``name`` = ``value`` (with the fix), or None.

    ``optional``: None is fine for ``max_new_tokens``, ``temperature`` and ``top_p`` (the
    model's default); ``n`` and ``batch_size`` are always required. Other names: None.
    """
    if name in _WHOLE:
        maximum, fix = _WHOLE[name]
        if value is None and optional and name == "max_new_tokens":
            return None
        if isinstance(value, bool) or not isinstance(value, Integral):
            return f"must be a whole number from 1 to {maximum:,}, got {value!r}. Fix: {fix}."
        if value < 1:
            return f"must be >= 1, got {value}. Fix: {fix}."
        if value > maximum:
            return f"must be <= {maximum:,} (see dreamer_dagster.llms.generation_limits), got {value:,}. Fix: {fix}."
        return None
    if name in _REAL:
        lowest, highest, fix = _REAL[name]
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"must be a number, got {value!r}. Fix: {fix}."
        if not math.isfinite(value):
            return (
                f"must be a finite number, got {value!r} (NaN and infinity cannot be sent as "
                f"JSON). Fix: {fix}."
            )
        if value < lowest or (highest is not None and value > highest):
            where = f"in [{lowest:g}, {highest:g}]" if highest is not None else f">= {lowest:g}"
            return f"must be {where}, got {value}. Fix: {fix}."
    return None
