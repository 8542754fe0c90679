"""``FakeLLM``: an LLM that answers offline and deterministically, for tests of pipelines.

It is an :class:`~dreamer_dagster.llms.LLM` like any other: steps take it as their ``llm``,
its answers go through the model cache (``<output>/.cache/FakeLLM-....db``), its identity
(the model name and the answers) enters the step fingerprints, and the step's
``dreamer/model_calls`` / ``dreamer/cache_hits`` metadata count its calls. Nothing is
loaded and no server is needed, so a user's pipeline test runs in a second::

    llm = FakeLLM({"Hi": "Hello!"})                        # a table of answers
    llm = FakeLLM(lambda prompt: prompt.upper())           # a function of the prompt
    llm = FakeLLM()                                        # "Echo: <prompt>"

An answer is a string (repeated for each of ``n`` choices), a list of ``n`` strings, or
None (a refusal). As a real model does, an answer stops at the first ``stop`` sequence
and keeps at most ``max_new_tokens`` words (a word is a token here). ``prompts_sent``
lists the prompts the model was actually asked (cache misses), in the order asked, across
every run of this model object and its run-time copies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NonRetryableError
from ..llms.batch_stream import BatchStream
from ..llms.generation_result import GenerationResult
from ..llms.llm import LLM
from ..llms.request import GenerationRequest
from ..llms.stream import GenerationStream

__all__ = ["FakeLLM", "MissingAnswerError"]

Answer = str | list[str] | None
Answers = Mapping[str, Answer] | Callable[[str], Answer] | None


class MissingAnswerError(NonRetryableError):
    """A ``FakeLLM`` built from a table was asked a prompt the table does not hold."""


class FakeLLM(LLM):
    """An offline, deterministic LLM: answers from a dict, a function of the prompt, or an echo.

    ``answers`` is keyed by the prompt as the step sends it (before ``system_prompt`` or a
    chat template is applied). ``context_length`` (default: unlimited) makes too-long
    prompts fail as they would on a real model.
    """

    def __init__(
        self,
        answers: Answers = None,
        model_name: str = "fake-llm",
        system_prompt: str | None = None,
        chat_prompt_template: str | None = None,
        *,
        context_length: int | None = None,
    ):
        super().__init__(model_name, system_prompt, chat_prompt_template)
        if answers is not None and not isinstance(answers, Mapping) and not callable(answers):
            raise TypeError(
                f"FakeLLM: answers must be a dict (prompt -> answer), a function of the prompt or "
                f"None, not {type(answers).__name__}. Fix: FakeLLM({{'prompt': 'answer'}})."
            )
        if context_length is not None and int(context_length) < 1:
            raise ValueError(f"FakeLLM: context_length must be >= 1 (got {context_length}).")
        self.answers = dict(answers) if isinstance(answers, Mapping) else answers
        self.context_length = None if context_length is None else int(context_length)
        self._prompts_sent: list[str] = []  # shared by the run-time copies (a shallow copy)

    def identity(self) -> dict:
        return {
            "model_name": self.model_name,
            "answers": self.answers,
            "system_prompt": self.system_prompt,
            "chat_prompt_template": self.chat_prompt_template,
            "context_length": self.context_length,
        }

    @property
    def prompts_sent(self) -> list[str]:
        """The prompts this model was asked (not those answered from the cache), in order."""
        return list(self._prompts_sent)

    # -- the backend ------------------------------------------------------------------

    def count_tokens(self, value: str) -> int:
        return len(value.split())

    def _context_length(self) -> int | None:
        return self.context_length

    def known_context_length(self) -> int | None:
        return self.context_length

    def _prompts_for_response_format(self) -> bool:
        return False  # the answers are the caller's: the prompt keeps its own text

    def _open_stream(self, params: dict, batch_size: int) -> GenerationStream:
        def run_batch(requests: list[GenerationRequest]) -> list[GenerationResult]:
            return [self._generate(request, params) for request in requests]

        return BatchStream(run_batch, batch_size)

    def _generate(self, request: GenerationRequest, params: dict) -> GenerationResult:
        self._prompts_sent.append(request.prompt)
        answer = self._answer(request.prompt)
        n = params["n"]
        if isinstance(answer, list):
            if len(answer) < n:
                raise ValueError(
                    f"FakeLLM: the answer to {request.prompt[:80]!r} has {len(answer)} choices, "
                    f"but n={n} were asked. Fix: give at least n answers, or one string."
                )
            texts: list[Any] = list(answer[:n])
        else:
            texts = [answer] * n
        texts = [None if text is None else self._shape(str(text), params) for text in texts]
        completion = sum(self.count_tokens(text) for text in texts if text is not None)
        return GenerationResult(
            texts, prompt_tokens=self.count_tokens(request.text), completion_tokens=completion
        )

    def _answer(self, prompt: str) -> Answer:
        if self.answers is None:
            return "Echo: " + prompt
        if callable(self.answers):
            return self.answers(prompt)
        if prompt not in self.answers:
            raise MissingAnswerError(
                f"FakeLLM({self.model_name!r}) has no answer for the prompt {prompt[:200]!r}. "
                "Fix: add it to the answers dict, or pass a function of the prompt."
            )
        return self.answers[prompt]

    def _shape(self, text: str, params: dict) -> str:
        """Cut at the first stop sequence; keep at most ``max_new_tokens`` words."""
        text = self._apply_stop(text, params["stop"])
        limit = params["max_new_tokens"]
        if limit is not None and len(text.split()) > limit:
            text = " ".join(text.split()[:limit])
        return text
