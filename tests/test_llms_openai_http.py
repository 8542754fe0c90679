"""The lean request path of OpenAI-compatible models (llms/openai_http.py) against the loopback server:
the same requests and answers as the SDK's path, the SDK's headers, and the one retry rule."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from dreamer_dagster.errors import EndpointUnreachableError, NonRetryableError
from dreamer_dagster.llms import OpenAI, Together

PROMPTS = ["alpha", "beta gamma", "delta [[fail:429:1]]", "epsilon [[fail:malformed:1]]"]


def run(llm: OpenAI, prompts: list[str], **kwargs) -> tuple[list, Counter]:
    bound = llm.for_run(cache_folder=None, stats=Counter())
    return bound.run(prompts, **kwargs), bound.stats


def model_requests(server, start: int = 0) -> list[dict]:
    return [r for r in server.requests[start:] if r["path"].endswith("completions")]


@pytest.mark.parametrize("chat", [True, False])
def test_the_lean_path_sends_the_sdks_bodies_and_reads_the_same_answers(openai_server, chat):
    """One model both ways: ``default_query`` is a client kwarg only the SDK takes, so it forces the SDK."""
    options = {"chat": chat, "retry_initial_delay": 0.01, "max_concurrency": 1}
    lean = OpenAI("fake-chat", base_url=openai_server.base_url, **options)
    sdk = OpenAI("fake-chat", base_url=openai_server.base_url, default_query={"v": "1"}, **options)
    assert lean.uses_lean_client() and not sdk.uses_lean_client()
    settings = {"max_new_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["zz"], "n": 2}
    lean_results, lean_stats = run(lean, PROMPTS, **settings)
    lean_requests = model_requests(openai_server)
    openai_server.reset()
    sdk_results, sdk_stats = run(sdk, PROMPTS, **settings)
    sdk_requests = model_requests(openai_server)
    assert lean_results == sdk_results and len(lean_results) == len(PROMPTS)
    assert all(len(texts) == 2 and texts[0].startswith("Echo: ") for texts in lean_results)
    # The same JSON bodies (a retried prompt is sent twice either way), in the same order.
    assert [r["body"] for r in lean_requests] == [r["body"] for r in sdk_requests]
    assert len(lean_requests) == len(PROMPTS) + 2
    assert lean_stats["retries"] == sdk_stats["retries"] == 2
    assert lean_stats["prompt_tokens"] == sdk_stats["prompt_tokens"] > 0
    assert lean_stats["completion_tokens"] == sdk_stats["completion_tokens"] > 0
    assert lean_requests[0]["headers"]["user-agent"] == "dreamer-dagster"
    assert sdk_requests[0]["headers"]["user-agent"] != "dreamer-dagster"
    assert all(r["headers"]["authorization"] == "Bearer no-key" for r in lean_requests)


def test_the_sdks_headers_and_environment(openai_server, monkeypatch):
    """The key, organization, project and default headers as the SDK sends them; the SDK's
    environment variables (``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``) read
    when no argument gives them."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    from_env = OpenAI("fake-chat")
    assert from_env.base_url is None and from_env.uses_lean_client()
    assert run(from_env, ["one"])[0] == ["Echo: one"]
    headers = openai_server.requests[-1]["headers"]
    assert headers["authorization"] == "Bearer sk-from-env"
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-env", "proj-env")
    given = OpenAI(
        "fake-chat",
        None,
        "org-arg",
        "sk-arg",
        openai_server.base_url,
        project="proj-arg",
        default_headers={"X-Team": "research"},
    )
    assert given.uses_lean_client()
    assert run(given, ["two"])[0] == ["Echo: two"]
    headers = openai_server.requests[-1]["headers"]
    assert headers["authorization"] == "Bearer sk-arg"
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-arg", "proj-arg")
    assert headers["x-team"] == "research"


def test_providers_take_the_lean_path_and_azure_and_batch_take_the_sdk(openai_server, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", "tg-key")
    together = Together("meta-llama/x", base_url=openai_server.base_url)
    assert together.uses_lean_client()
    assert run(together, ["hi"])[0] == ["Echo: hi"]
    assert openai_server.requests[-1]["headers"]["authorization"] == "Bearer tg-key"
    assert not OpenAI("gpt-4o", api_version="2024-06-01", azure_endpoint="https://x").uses_lean_client()
    assert not OpenAI("gpt-4o", batch=True).uses_lean_client()


def test_a_client_error_fails_at_once_with_the_servers_message(openai_server):
    openai_server.fail_next(401, 1)
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, max_concurrency=1)
    with pytest.raises(NonRetryableError, match=r"'fake-chat'.*HTTP 401: Incorrect API key provided\."):
        run(llm, ["x"])
    assert openai_server.statuses[401] == 1 and openai_server.request_count == 1


def test_an_unreachable_server_fails_at_once_and_is_named(tmp_path):
    """Nothing listens on port 1 and nothing was answered yet: a wrong base_url, not an outage,
    so no retry (after an answer it is retried: test_api_secrets_and_config_errors.py)."""
    llm = OpenAI(
        "fake-chat", base_url="http://127.0.0.1:1/v1", max_retries=2, retry_initial_delay=0.01, timeout=5
    )
    with pytest.raises(
        EndpointUnreachableError, match=r"127\.0\.0\.1:1/v1 cannot be reached.*Fix:"
    ) as raised:
        run(llm, ["x"])
    assert "APIConnectionError" in str(raised.value)


def test_a_request_past_its_timeout_is_retried_and_counted(openai_server):
    """The first attempt is held unanswered past the 0.3 s timeout; the retry is answered at once,
    and the run ends while the first is still held (it was not waited out)."""
    llm = OpenAI(
        "fake-chat", base_url=openai_server.base_url, timeout=0.3, max_retries=3, retry_initial_delay=0.01
    )
    answered = {"count": 0}
    route = openai_server._route
    release, first_answered = threading.Event(), threading.Event()

    def slow_first(request):
        answered["count"] += 1
        if answered["count"] == 1:
            release.wait(60)  # held until the run is over (a client that waited would wait 60 s)
            first_answered.set()
        return route(request)

    openai_server._route = slow_first
    try:
        results, stats = run(llm, ["slow"])
        assert not first_answered.is_set(), "the timed-out attempt was waited out"
    finally:
        release.set()
    assert results == ["Echo: slow"]
    assert stats["retries"] == 1 and stats["model_calls"] == 1
    assert openai_server.request_count == 2
