"""DataDreamer's prompt-building interface of an LLM: what fits its context.

``get_max_context_length``, ``final_count_tokens`` and ``format_prompt``
(instructions and as many in-context examples as fit with ``max_new_tokens``
left), on every LLM through :class:`PromptFormatting`. The LLM supplies
``count_tokens``, ``_context_length``, ``_format_text`` and ``_count_text_tokens``.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

__all__ = ["PromptFormatting"]


class PromptFormatting:
    """DataDreamer's ``format_prompt`` and context-length helpers (a mixin of ``LLM``)."""

    count_tokens: Any
    _context_length: Any
    _format_text: Any
    _count_text_tokens: Any

    #: Context length assumed where a backend does not know its model's.
    ASSUMED_CONTEXT_LENGTH = 4096

    def get_max_context_length(self, max_new_tokens: int) -> int:
        """The context length left for the prompt when ``max_new_tokens`` will be generated."""
        return (self._context_length() or self.ASSUMED_CONTEXT_LENGTH) - max_new_tokens

    def final_count_tokens(self, value: str | None) -> int:
        """The tokens of ``value`` (0 for None or an empty text)."""
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
