"""OpenAI (and OpenAI-compatible servers) against the loopback fake server."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pydantic
import pytest

from dreamer_dagster.cache import ModelCache
from dreamer_dagster.errors import NonRetryableError
from dreamer_dagster.fingerprint import canonical, fingerprint
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.llms.pricing import estimate_cost
from dreamer_dagster.llms.token_estimate import estimate_tokens


def bound(llm: OpenAI, cache: Path | None = None) -> OpenAI:
    return llm.for_run(cache_folder=cache, stats=Counter())


def make(server, **kwargs) -> OpenAI:
    kwargs.setdefault("retry_initial_delay", 0.01)
    return OpenAI("fake-chat", base_url=server.base_url, **kwargs)


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_never_more_than_max_concurrency_in_flight(openai_server, concurrency):
    openai_server.latency = 0.05
    llm = bound(make(openai_server, max_concurrency=concurrency))
    prompts = [f"prompt {i}" for i in range(4 * concurrency + 3)]
    results = llm.run(prompts, max_new_tokens=8)
    assert results == [f"Echo: {p}" for p in prompts]
    assert openai_server.max_in_flight <= concurrency
    assert openai_server.max_in_flight >= min(concurrency, 2)  # they did overlap
    assert openai_server.request_count == len(prompts)
    assert llm.stats["model_calls"] == len(prompts)
    assert llm.stats["prompt_tokens"] > 0 and llm.stats["completion_tokens"] > 0


@pytest.mark.parametrize("batch_size", [4, 10])
def test_a_slow_request_holds_up_no_other_and_order_is_kept(openai_server, batch_size):
    openai_server.latency = 0.02
    llm = bound(make(openai_server, max_concurrency=4))
    prompts = ["first [[sleep:2.0]]"] + [f"p{i}" for i in range(45)]
    results = list(llm.run(prompts, return_generator=True, batch_size=batch_size))
    assert results == [f"Echo: {p}" for p in prompts]
    assert openai_server.max_in_flight <= 4
    # From the server's own records: every fast request was received and answered
    # while the slow one was in flight (45 x 20 ms over the 3 other slots: well under
    # 2 s even at ~60 ms a request on a busy machine). A barrier every `batch_size`
    # prompts would hold the rest until the slow one ends.
    [slow] = [r for r in openai_server.requests if "[[sleep" in json.dumps(r["body"])]
    fast = [r for r in openai_server.requests if r is not slow]
    assert len(fast) == 45
    assert all(slow["started"] < r["finished"] < slow["finished"] for r in fast)


@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "disconnect"])
def test_transient_failures_are_retried_and_the_run_completes(openai_server, fault):
    openai_server.fail_next(fault, 3)
    llm = bound(make(openai_server, max_concurrency=2))
    assert llm.run(["a", "b", "c", "d"]) == ["Echo: a", "Echo: b", "Echo: c", "Echo: d"]
    assert openai_server.request_count == 4 + 3


def test_retry_after_is_honoured(openai_server):
    openai_server.retry_after = "0.6"
    llm = bound(make(openai_server, max_concurrency=1, retry_initial_delay=0.001))
    prompt = "limited [[fail:429:1]]"
    started = time.monotonic()
    assert llm.run([prompt]) == [f"Echo: {prompt}"]
    assert time.monotonic() - started >= 0.6
    assert openai_server.statuses[429] == 1


def test_per_prompt_fault_markers_only_affect_that_prompt(openai_server):
    llm = bound(make(openai_server, max_concurrency=2))
    prompts = ["ok", "flaky [[fail:500:2]]", "ok too"]
    assert llm.run(prompts) == [f"Echo: {p}" for p in prompts]
    assert openai_server.statuses[500] == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_fail_at_once_naming_the_model(openai_server, status):
    openai_server.fail_next(status, 1)
    llm = bound(make(openai_server, max_concurrency=1))
    with pytest.raises(RuntimeError, match=rf"'fake-chat'.*HTTP {status}"):
        llm.run(["x", "y"])
    assert openai_server.statuses[status] == 1  # no retry
    assert openai_server.request_count <= 2


def test_no_queued_request_is_sent_after_a_client_error(openai_server):
    openai_server.fail_next(401, 1000)
    llm = bound(make(openai_server, max_concurrency=4))
    with pytest.raises(RuntimeError, match="HTTP 401"):
        llm.run([f"prompt {i}" for i in range(200)])
    # only the requests already in flight when the first 401 came back were sent
    assert openai_server.request_count <= 4


def test_giving_up_after_max_retries_is_a_clear_error(openai_server):
    openai_server.fail_next(500, 100)
    llm = bound(make(openai_server, max_retries=2))
    with pytest.raises(RuntimeError, match=r"'fake-chat'.*HTTP 500.*after 3 attempts"):
        llm.run(["x"])


def test_a_timed_out_request_is_retried_and_timeouts_alone_give_up(openai_server):
    received, answered_slow = [], []
    release = threading.Event()
    answer = openai_server._chat_completions

    def slow_first(request):
        received.append(time.monotonic())
        if len(received) == 1:
            time.sleep(1.0)  # longer than the client's timeout
        elif "always slow" in json.dumps(request.body):
            release.wait(60)  # held until the client gave up (one that waited would wait 60 s)
            answered_slow.append(request)
        return answer(request)

    openai_server.add_route("POST", r"/v1/chat/completions", slow_first)
    llm = bound(make(openai_server, timeout=0.3, max_concurrency=1))
    assert llm.run(["x"]) == ["Echo: x"]
    assert len(received) == 2 and received[1] - received[0] >= 0.3  # sent again after the timeout

    try:
        with pytest.raises(RuntimeError, match=r"'fake-chat'.*APITimeoutError.*after 3 attempts"):
            bound(make(openai_server, timeout=0.3, max_retries=2)).run(["always slow"])
        assert len(received) == 2 + 3 and answered_slow == []  # gave up with all 3 still unanswered
    finally:
        release.set()


def test_backoff_doubles_with_jitter_within_its_bounds_and_retry_after_wins():
    from types import SimpleNamespace

    from dreamer_dagster.llms.api_retry import RetryPolicy, retry_delay

    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0)
    error = SimpleNamespace(status_code=500, response=SimpleNamespace(headers={}))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = [retry_delay(error, attempt, policy) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one fixed wait

    def limited(headers: dict[str, str]) -> SimpleNamespace:  # what retry_delay reads of a 429
        return SimpleNamespace(status_code=429, response=SimpleNamespace(headers=headers))

    assert (
        retry_delay(limited({"retry-after": "7"}), 1, policy) == 7.0
    )  # the server's wait, even past max_delay
    assert retry_delay(limited({"retry-after-ms": "250"}), 3, policy) == 0.25
    in_two_seconds = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    assert 0.5 < retry_delay(limited({"retry-after": in_two_seconds}), 1, policy) <= 2.0
    assert 0.25 <= retry_delay(limited({"retry-after": "soon"}), 1, policy) <= 0.5  # unreadable: backoff


def test_waits_between_retries_grow_as_the_backoff_says(openai_server):
    openai_server.fail_next(500, 3)
    llm = bound(make(openai_server, max_concurrency=1, retry_initial_delay=0.1))
    assert llm.run(["x"]) == ["Echo: x"]
    sent = [record["started"] for record in openai_server.requests]
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    assert len(gaps) == 3
    # At least half of 0.1, 0.2 and 0.4 s (the jitter's floor) between attempts.
    assert all(gap >= floor for gap, floor in zip(gaps, [0.05, 0.1, 0.2])), gaps


def test_cache_serves_a_rerun_and_keeps_the_api_key_out(openai_server, tmp_path, monkeypatch):
    secret = "sk-very-secret-value-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    llm = make(openai_server)
    first = bound(llm, tmp_path)
    prompts = [f"p{i}" for i in range(30)] + ["p1", "p1"]
    assert first.run(prompts, temperature=0.7, top_p=1.0) == [f"Echo: {p}" for p in prompts]
    assert openai_server.requests[0]["headers"]["authorization"] == f"Bearer {secret}"
    again = bound(llm, tmp_path)
    assert again.run(prompts, temperature=0.7, top_p=1.0) == [f"Echo: {p}" for p in prompts]
    assert again.stats["cache_hits"] == len(prompts) and again.stats["model_calls"] == 0
    assert openai_server.request_count == len(prompts)
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path
    explicit = OpenAI("fake-chat", base_url=openai_server.base_url, api_key=secret)
    assert secret not in repr(explicit) and secret not in str(explicit.fingerprint_identity())
    assert explicit.model_fingerprint == llm.model_fingerprint


def test_the_seed_reaches_the_api_as_given_and_identical_prompts_are_cached_apart(openai_server, tmp_path):
    """DataDreamer sends ``seed`` as given (never a per-prompt number): a seeded provider may
    then answer identical prompts alike; each occurrence still has its own cache entry."""
    llm = bound(make(openai_server), tmp_path)
    results = llm.run(["same"] * 3, seed=7, temperature=1.0, top_p=1.0)
    assert results == ["Echo: same [seed 7]"] * 3
    assert [request["body"]["seed"] for request in openai_server.requests] == [7, 7, 7]
    rerun = bound(make(openai_server), tmp_path)
    assert rerun.run(["same"] * 3, seed=7, temperature=1.0, top_p=1.0) == results
    assert rerun.stats["cache_hits"] == 3


def test_n_returns_lists(openai_server):
    llm = bound(make(openai_server))
    [answers] = llm.run(["q"], n=3, temperature=1.0, top_p=1.0)
    assert answers == [f"Echo: q [choice {i}]" for i in range(3)]


def test_identity_what_changes_it_and_what_does_not(openai_server):
    base = make(openai_server)
    assert base.model_fingerprint == make(openai_server, max_concurrency=50, timeout=3).model_fingerprint
    assert base.model_fingerprint != make(openai_server, system_prompt="Be terse.").model_fingerprint
    assert base.model_fingerprint != OpenAI("fake-chat", base_url="http://other:1/v1").model_fingerprint
    assert base.model_fingerprint != OpenAI("other", base_url=openai_server.base_url).model_fingerprint


def test_cache_key_follows_generation_parameters_not_batch_size(openai_server, tmp_path):
    llm = make(openai_server)

    def run(**kwargs) -> int:
        bound_llm = bound(llm, tmp_path)
        bound_llm.run(["x", "y"], **kwargs)
        return bound_llm.stats["model_calls"]

    assert run(temperature=0.5) == 2
    assert run(temperature=0.5, batch_size=1) == 0
    assert bound(make(openai_server, max_concurrency=1), tmp_path).run(["x"], temperature=0.5) == ["Echo: x"]
    assert run(temperature=0.6) == 2
    assert run(temperature=0.5, stop=["\n"]) == 2
    assert run(temperature=0.5, max_new_tokens=5) == 2
    assert run(temperature=0.5, seed=1) == 2


def test_completion_models_and_stop_sequences(openai_server):
    llm = bound(OpenAI("fake-instruct", base_url=openai_server.base_url, chat=False))
    assert llm.run(["hello there friend"], stop=["friend"]) == ["Echo: hello there"]
    assert openai_server.requests[-1]["path"] == "/v1/completions"
    assert llm.run(["one two three four"], max_new_tokens=2) == ["Echo: one"]


class Answer(pydantic.BaseModel):
    answer: str
    confidence: float


def test_response_format_sends_the_schema_and_counts_parse_failures(openai_server):
    llm = bound(make(openai_server))
    results = llm.run(["what?", "broken [[badjson]]"], response_format=Answer)
    sent = openai_server.requests[0]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"]["required"] == [
        "answer",
        "confidence",
    ]
    assert Answer.model_validate_json(results[0]).confidence == 1.5
    assert results[1] is None
    assert llm.stats["response_format_failures"] == 1
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert llm.run(["x"], response_format=schema) == ['{"n":1}']


def test_prompts_that_cannot_fit_the_context_fail_clearly(openai_server):
    llm = bound(make(openai_server, max_context_length=50))
    with pytest.raises(ValueError, match=r"prompt #1 has \d+ tokens.*context length of 50"):
        llm.run(["short", "word " * 100])
    with pytest.raises(ValueError, match="max_new_tokens"):
        llm.run(["short"], max_new_tokens=60)


def test_generator_streams_in_order_while_running(openai_server):
    llm = bound(make(openai_server, max_concurrency=4))
    total = 900
    stream = llm.run((f"p{i}" for i in range(total)), return_generator=True)
    seen = []
    for i, text in enumerate(stream):
        assert text == f"Echo: p{i}"
        if i == 10:
            # Prompts are read and sent only a bounded window ahead of what was consumed.
            assert openai_server.request_count <= 10 + llm._lookahead(10) + 64
        seen.append(text)
    assert len(seen) == total


def test_missing_api_key_for_openai_itself_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(NonRetryableError, match="OPENAI_API_KEY"):
        bound(OpenAI("gpt-4o-mini")).run(["x"])


def test_token_estimates_and_costs_are_offline():
    assert estimate_tokens("") == 0
    assert 8 <= estimate_tokens("The quick brown fox jumps over the lazy dog.") <= 12
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("my-local-model", 10, 10) is None
    assert OpenAI("gpt-4o-mini").get_max_context_length(1000) == 127_000
    assert OpenAI("gpt-3.5-turbo-instruct").chat is False


def test_concurrent_runs_from_threads_share_nothing_but_the_server(openai_server, tmp_path):
    llm = make(openai_server, max_concurrency=2)
    outputs: dict[int, list] = {}

    def work(worker: int) -> None:
        outputs[worker] = bound(llm, tmp_path).run([f"w{worker}-{i}" for i in range(20)])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in range(3):
        assert outputs[worker] == [f"Echo: w{worker}-{i}" for i in range(20)]
    with ModelCache(tmp_path, llm.cache_name()) as cache:
        assert len(cache) == 60


def test_the_api_key_is_neither_hashed_nor_shown_in_a_fingerprint(openai_server, monkeypatch):
    one = OpenAI("fake-chat", base_url=openai_server.base_url, api_key="sk-secret-in-args-one")
    other = OpenAI("fake-chat", base_url=openai_server.base_url, api_key="sk-secret-in-args-two")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-from-the-environment")
    from_environment = OpenAI("fake-chat", base_url=openai_server.base_url)
    # The key changes nothing a fingerprint is made of...
    assert fingerprint({"llm": one}) == fingerprint({"llm": other}) == fingerprint({"llm": from_environment})
    # ...while what does change the outputs does change it.
    assert fingerprint({"llm": one}) != fingerprint(
        {"llm": OpenAI("fake-instruct", api_key="sk-secret-in-args-one")}
    )
    for llm in (one, other, from_environment):
        text = json.dumps(canonical({"llm": llm}))
        assert "sk-secret" not in text and "api_key" not in text, text


def test_the_server_runs_as_a_subprocess_with_remote_control(openai_server_process):
    from tests.support.openai_server import control

    control(openai_server_process, "/_configure", {"latency": 0.01, "faults": [[429, 1]]})
    llm = OpenAI("fake-chat", base_url=openai_server_process, max_concurrency=2, retry_initial_delay=0.01)
    assert bound(llm).run(["a", "b", "c"]) == ["Echo: a", "Echo: b", "Echo: c"]
    stats = control(openai_server_process, "/_stats")
    assert stats["requests"] == 4 and stats["statuses"]["429"] == 1 and stats["max_in_flight"] <= 2
    control(openai_server_process, "/_reset", {})
    assert control(openai_server_process, "/_stats")["requests"] == 0


def test_embeddings_endpoint_is_deterministic(openai_server):
    import openai

    client = openai.OpenAI(api_key="x", base_url=openai_server.base_url)
    first = client.embeddings.create(model="fake-embed", input=["a", "b"], dimensions=4)
    second = client.embeddings.create(model="fake-embed", input="a", dimensions=4)
    assert first.data[0].embedding == second.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
    assert abs(sum(v * v for v in first.data[0].embedding) - 1.0) < 1e-9
    assert [m.id for m in client.models.list().data] == ["fake-chat", "fake-instruct"]
