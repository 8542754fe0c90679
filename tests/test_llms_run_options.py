"""DataDreamer's run settings and model settings never reach the cache key or the request;
structured output validates fully and asks again."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pydantic
import pytest

from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, Prompt, StepDeclarationError
from tests.support.foundation import materialization_metadata, materialize, rows
from tests.support.openai_server import FakeRequest, FakeResponse

PROMPTS = ["alpha", "beta", "alpha"]
RUN_SETTINGS = {
    "batch_scheduler_buffer_size": 100,
    "adaptive_batch_size": True,
    "progress_interval": 5,
    "verbose": True,
    "log_level": 10,
    "total_num_prompts": 3,
}


def cache_keys(folder: Path) -> set[str]:
    [db] = list(folder.glob("*.db"))
    with sqlite3.connect(db) as connection:
        return {key for (key,) in connection.execute("SELECT key FROM cache")}


def bodies(server, start: int = 0) -> list[dict]:
    """The request bodies from ``start`` on, in a fixed order (requests in flight together
    reach the server in either order)."""
    return sorted((request["body"] for request in server.requests[start:]), key=json.dumps)


def test_run_settings_and_model_settings_leak_into_neither_key_nor_request(openai_server, tmp_path):
    plain = OpenAI("fake-chat", base_url=openai_server.base_url)
    first = plain.for_run(tmp_path / "a", Counter())
    expected = first.run(PROMPTS, temperature=0.7, top_p=1.0, seed=3)
    sent = bodies(openai_server)

    tuned = OpenAI(
        "fake-chat",
        None,
        None,
        "sk-other",
        openai_server.base_url,
        None,
        False,
        str(tmp_path / "elsewhere"),
        max_concurrency=2,
        timeout=30,
        max_retries=1,
        default_headers={"X-Team": "research"},
    )
    assert tuned.model_fingerprint == plain.model_fingerprint
    second = tuned.for_run(tmp_path / "b", Counter())
    start = openai_server.request_count
    assert second.run(PROMPTS, temperature=0.7, top_p=1.0, seed=3, **RUN_SETTINGS) == expected

    # The same request bodies (in any order: requests in flight at once arrive in any order).
    def canonical(requests: list[dict]) -> list[str]:
        return sorted(json.dumps(body, sort_keys=True) for body in requests)

    assert canonical(bodies(openai_server, start)) == canonical(sent)
    assert openai_server.requests[-1]["headers"]["x-team"] == "research"  # client kwargs reach the client
    assert not (tmp_path / "b").exists()  # cache_folder_path took the cache elsewhere
    assert cache_keys(tmp_path / "elsewhere") == cache_keys(tmp_path / "a")  # the same cache keys


def test_force_and_cache_only(openai_server, tmp_path):
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    llm.for_run(tmp_path, Counter()).run(PROMPTS)
    assert openai_server.request_count == 3
    cached = llm.for_run(tmp_path, Counter())
    assert cached.run(PROMPTS, cache_only=True) == [f"Echo: {p}" for p in PROMPTS]
    assert openai_server.request_count == 3 and cached.stats["cache_hits"] == 3
    forced = llm.for_run(tmp_path, Counter())
    assert forced.run(PROMPTS, force=True) == [f"Echo: {p}" for p in PROMPTS]
    assert openai_server.request_count == 6 and forced.stats["cache_hits"] == 0
    with pytest.raises(RuntimeError, match="cache_only=True, but 1 prompts are not in the cache"):
        llm.for_run(tmp_path, Counter()).run(["alpha", "gamma"], cache_only=True)
    assert openai_server.request_count == 6
    with pytest.raises(ValueError, match="contradict"):
        llm.run(["x"], force=True, cache_only=True)


class Rating(pydantic.BaseModel):
    score: int = pydantic.Field(ge=1, le=5)
    label: str

    @pydantic.field_validator("label")
    @classmethod
    def lower_case(cls, value: str) -> str:
        if value != value.lower():
            raise ValueError("label must be lower case")
        return value


SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1},
        "code": {"type": "string", "maxLength": 4, "pattern": "^[A-Z]+$"},
    },
    "required": ["score", "code"],
}


def scripted_answers(server, answers: dict[str, list[str]]) -> Counter:
    """Answer each prompt with its scripted texts in turn (the last one repeats)."""
    calls: Counter = Counter()

    def handler(request: FakeRequest) -> FakeResponse:
        prompt = request.body["messages"][-1]["content"].split("\n\nRespond only")[0]
        script = answers[prompt]
        text = script[min(calls[prompt], len(script) - 1)]
        calls[prompt] += 1
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return FakeResponse(
            200, {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
        )

    server.add_route("POST", r"/v1/chat/completions", handler)
    return calls


def test_answers_that_break_the_schema_or_a_validator_are_asked_again(openai_server, tmp_path):
    calls = scripted_answers(
        openai_server,
        {
            "good": ['{"score": 3, "label": "fine"}'],
            "too high": ['{"score": 9, "label": "fine"}', '{"score": 5, "label": "fine"}'],
            "upper": ['{"score": 2, "label": "LOUD"}', "not json", '{"score": 2, "label": "loud"}'],
            "hopeless": ["nope"],
        },
    )
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    bound = llm.for_run(tmp_path, Counter())
    prompts = ["good", "too high", "upper", "hopeless"]
    results = bound.run(prompts, response_format=Rating, response_format_retries=2)
    assert [None if r is None else Rating.model_validate_json(r).score for r in results] == [3, 5, 2, None]
    assert calls == Counter({"good": 1, "too high": 2, "upper": 3, "hopeless": 3})
    assert bound.stats["response_format_retries"] == 1 + 2 + 2
    assert bound.stats["response_format_failures"] == 1
    rerun = llm.for_run(tmp_path, Counter())
    assert rerun.run(prompts, response_format=Rating, response_format_retries=2) == results
    assert sum(calls.values()) == 9 and rerun.stats["model_calls"] == 0  # retries came from the cache

    calls.clear()
    no_retry = OpenAI("fake-chat", base_url=openai_server.base_url, system_prompt="x")
    assert no_retry.for_run(None, Counter()).run(
        ["too high"], response_format=Rating, response_format_retries=0
    ) == [None]
    assert calls["too high"] == 1


def test_schema_keywords_are_all_enforced(openai_server):
    scripted_answers(
        openai_server,
        {
            "ok": ['{"score": 1, "code": "AB"}'],
            "minimum": ['{"score": 0, "code": "AB"}'],
            "long": ['{"score": 1, "code": "ABCDE"}'],
            "pattern": ['{"score": 1, "code": "ab"}'],
        },
    )
    llm = OpenAI("fake-chat", base_url=openai_server.base_url).for_run(None, Counter())
    results = llm.run(["ok", "minimum", "long", "pattern"], response_format=SCHEMA, response_format_retries=0)
    assert results == ['{"score":1,"code":"AB"}', None, None, None]


def test_an_invalid_schema_fails_at_declaration_naming_step_and_argument(openai_server):
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    source = DataSource("Words", {"w": ["a"]})
    with pytest.raises(StepDeclarationError, match=r"Ask.*response_format.*objekt"):
        Prompt(
            "Ask",
            inputs={"prompts": source.output["w"]},
            args={"llm": llm, "response_format": {"type": "objekt"}},
        )
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        llm.run(["x"], response_format={"type": "object", "properties": {"a": {"minimum": "one"}}})


def test_the_first_parsed_rows_show_in_the_metadata(openai_server, tmp_path, instance):
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    source = DataSource("Topics", {"t": [f"topic {i}" for i in range(6)]})
    step = Prompt(
        "Rate Topics",
        inputs={"prompts": source.output["t"]},
        args={
            "llm": llm,
            "response_format": {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1}}},
            "response_format_retries": 1,
        },
    )
    result = materialize([step], instance, tmp_path / "out")
    metadata = materialization_metadata(result, step)
    examples = metadata["dreamer/response_format_examples"]
    assert len(examples) == 3 and all(json.loads(e)["score"] == 1 for e in examples)
    assert len(rows(tmp_path / "out", step)["generations"]) == 6
    assert metadata["dreamer/response_format_failures"] == 0
