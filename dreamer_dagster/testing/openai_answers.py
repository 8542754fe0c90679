"""The model endpoints of ``FakeOpenAIServer``: deterministic, echo-based answers.

Chat answers ``"Echo: <last user message>"``, completions ``" Echo: <prompt>"``; see
:mod:`dreamer_dagster.testing.openai_server` for seeds, ``n``, ``max_tokens``, ``stop``,
structured outputs, refusals and embeddings.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .http_messages import FakeRequest, FakeResponse, content_text

__all__ = ["OpenAIAnswers", "example_of", "fake_embedding"]


class OpenAIAnswers:
    """The answering routes (a mixin of ``FakeOpenAIServer``): chat, completions, models and
    embeddings. Usage counts words as tokens."""

    models: list[str]
    reasoning_tokens: int
    cached_prompt_tokens: int

    def _chat_completions(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        self._check_model(body["model"])
        user = [m for m in body["messages"] if m.get("role") == "user"]
        content = content_text(user[-1]["content"]) if user else ""
        choices = []
        for i, text in enumerate(self._answers("Echo: " + content, body, content)):
            message = {"role": "assistant", "content": text}
            if "[[refuse]]" in content:
                message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            choices.append({"index": i, "message": message, "finish_reason": "stop", "logprobs": None})
        prompt_words = sum(len(content_text(m.get("content", "")).split()) for m in body["messages"])
        return FakeResponse(200, self._completion_body("chat.completion", body, choices, prompt_words))

    def _completions(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        self._check_model(body["model"])
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for prompt in prompts:
            for text in self._answers(" Echo: " + prompt, body, prompt):
                choices.append(
                    {"index": len(choices), "text": text, "finish_reason": "stop", "logprobs": None}
                )
        prompt_words = sum(len(p.split()) for p in prompts)
        return FakeResponse(200, self._completion_body("text_completion", body, choices, prompt_words))

    def _answers(self, answer: str, body: dict, prompt: str) -> list[str]:
        n = int(body.get("n") or 1)
        if body.get("seed") is not None:
            answer += f" [seed {body['seed']}]"
        texts = []
        for i in range(n):
            text = answer + (f" [choice {i}]" if n > 1 else "")
            response_format = body.get("response_format") or {}
            if response_format.get("type") == "json_schema":
                schema = response_format["json_schema"].get("schema", {})
                text = "{broken" if "[[badjson]]" in prompt else json.dumps(example_of(schema, text))
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            if limit and not text.startswith("{"):
                lead = text[: len(text) - len(text.lstrip())]
                text = lead + " ".join(text.split()[: int(limit)])
            for stop in [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop") or []:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            texts.append(text)
        return texts

    def _completion_body(self, kind: str, body: dict, choices: list, prompt_words: int) -> dict:
        completion_words = sum(
            len((c.get("text") or c.get("message", {}).get("content") or "").split()) for c in choices
        )
        return {
            "id": f"cmpl-{hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]}",
            "object": kind,
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": choices,
            "usage": self._usage(prompt_words, completion_words),
        }

    def _usage(self, prompt_words: int, completion_words: int) -> dict:
        """Words count as tokens; reasoning tokens are billed inside completion_tokens, as OpenAI does."""
        completion = completion_words + self.reasoning_tokens
        usage: dict = {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion,
            "total_tokens": prompt_words + completion,
        }
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.cached_prompt_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_prompt_tokens, prompt_words)}
        return usage

    def _list_models(self, request: FakeRequest) -> FakeResponse:
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for m in self.models
        ]
        return FakeResponse(200, {"object": "list", "data": data})

    def _embeddings(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        inputs = body["input"]
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dimensions = int(body.get("dimensions") or 8)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_embedding(item, dimensions)}
            for i, item in enumerate(inputs)
        ]
        tokens = sum(len(item.split()) if isinstance(item, str) else len(item) for item in inputs)
        return FakeResponse(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _check_model(self, model: str) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError("model is required")


def fake_embedding(item: Any, dimensions: int = 8) -> list[float]:
    """A deterministic unit vector for ``item`` (a string or a token list)."""
    text = item if isinstance(item, str) else json.dumps(item)
    values = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def example_of(schema: dict, text: str, definitions: dict | None = None) -> Any:
    definitions = definitions if definitions is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return example_of(definitions.get(schema["$ref"].rsplit("/", 1)[-1], {}), text, definitions)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example_of(schema["anyOf"][0], text, definitions)
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {
            name: example_of(sub, text, definitions) for name, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [example_of(schema.get("items", {}), text, definitions)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, text)
