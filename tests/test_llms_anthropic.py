"""Anthropic on the official SDK, end to end against the loopback Messages-API server."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.errors import NonRetryableError
from dreamer_dagster.llms import Anthropic
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from tests.support.foundation import materialization_metadata, materialize, rows

SECRET = "sk-ant-very-secret-0123456789abcdef"


def claude(server, **kwargs) -> Anthropic:
    kwargs.setdefault("retry_initial_delay", 0.01)
    return Anthropic("claude-fake-1", base_url=server.root_url, **kwargs)


def bound(llm: Anthropic, cache: Path | None = None) -> Anthropic:
    return llm.for_run(cache_folder=cache, stats=Counter())


def test_every_row_answered_once_under_429_and_529_faults_then_a_rerun_is_cached(
    anthropic_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    anthropic_server.fail_next(429, 2)
    anthropic_server.fail_next(529, 2)
    anthropic_server.fail_next(503, 1)
    prompts = [f"question {i}" for i in range(12)]
    llm = bound(claude(anthropic_server, max_concurrency=3), tmp_path)
    assert llm.run(prompts, max_new_tokens=10) == [f"Claude: {p}" for p in prompts]
    assert anthropic_server.statuses[429] == 2 and anthropic_server.statuses[529] == 2
    assert anthropic_server.answered == Counter(prompts)  # each row answered exactly once
    assert anthropic_server.max_in_flight <= 3
    assert llm.stats["retries"] == 5 and llm.stats["model_calls"] == 12
    assert _sent_key(anthropic_server.requests[0]) == SECRET
    sent = anthropic_server.requests[-1]["body"]
    assert sent["model"] == "claude-fake-1" and sent["max_tokens"] == 10 and sent["temperature"] == 0.0

    before = anthropic_server.request_count
    again = bound(claude(anthropic_server), tmp_path)
    assert again.run(prompts, max_new_tokens=10) == [f"Claude: {p}" for p in prompts]
    assert anthropic_server.request_count == before
    assert again.stats["cache_hits"] == 12 and again.stats["model_calls"] == 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def _sent_key(request: dict) -> str | None:
    headers = request["headers"]
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def test_retry_after_on_529_is_honoured(anthropic_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    anthropic_server.retry_after = "0.5"
    llm = bound(claude(anthropic_server, max_concurrency=1, retry_initial_delay=0.001))
    started = time.monotonic()
    assert llm.run(["busy [[fail:529:1]]"]) == ["Claude: busy [[fail:529:1]]"]
    assert time.monotonic() - started >= 0.5


def test_sampling_stop_and_n(anthropic_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    llm = bound(claude(anthropic_server, system_prompt="Be terse."))
    assert llm.run(["one two three four"], stop=["three"], temperature=0.7, top_p=0.9, n=2) == [
        ["Claude: one two", "Claude: one two"]
    ]
    body = anthropic_server.requests[-1]["body"]
    assert body["stop_sequences"] == ["three"] and body["system"] == "Be terse."
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert anthropic_server.request_count == 2  # n=2: two requests


def test_key_and_base_url_from_the_environment(anthropic_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_server.root_url)
    llm = bound(Anthropic("claude-fake-1"))
    assert llm.run(["hi"]) == ["Claude: hi"]
    assert _sent_key(anthropic_server.requests[0]) == SECRET
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(NonRetryableError, match="ANTHROPIC_API_KEY"):
        bound(Anthropic("claude-fake-1")).run(["other"])


def test_positional_arguments_follow_datadreamer():
    llm = Anthropic("claude-3-5-haiku-latest", "sk-given", False, "/tmp/cache")
    assert (llm._api_key, llm.retry_on_fail, llm.cache_folder_path) == ("sk-given", False, "/tmp/cache")
    assert "sk-given" not in repr(llm) and "sk-given" not in str(llm.fingerprint_identity())
    assert llm.model_fingerprint == Anthropic("claude-3-5-haiku-latest").model_fingerprint


def test_401_fails_the_step_at_once_naming_step_and_model_and_the_key_stays_secret(
    anthropic_server, tmp_path, instance, monkeypatch, caplog
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    output = tmp_path / "output"
    source = DataSource("Questions", {"q": [f"q{i}" for i in range(40)]})
    step = ProcessWithPrompt(
        "Ask Claude",
        inputs={"inputs": source.output["q"]},
        args={"llm": claude(anthropic_server, max_concurrency=2), "instruction": "Answer."},
    )
    materialize([source], instance, output)
    anthropic_server.fail_next(401, 1000)
    defs = dreamer_definitions([step], output_folder=str(output))
    with caplog.at_level(logging.DEBUG):
        result = dg.materialize(
            list(defs.assets), instance=instance, resources=dict(defs.resources), raise_on_error=False
        )
    assert not result.success
    assert anthropic_server.request_count <= 2  # only what was in flight; no retry
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "Ask Claude" in message and "claude-fake-1" in message and "HTTP 401" in message

    anthropic_server.reset()
    ok = materialize([step], instance, output)
    generations = rows(output, step)["generations"]
    assert len(generations) == 40 and all(g.startswith("Claude: ") for g in generations)
    assert "q0" in generations[0] and "q39" in generations[39]
    assert materialization_metadata(ok, step)["dreamer/model_calls"] == 40
    assert materialize([step], instance, output) and anthropic_server.request_count == 40
    for path in list(output.rglob("*")) + list(Path(instance.root_directory).rglob("*")):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text
