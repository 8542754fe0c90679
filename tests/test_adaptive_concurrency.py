"""Adaptive concurrency: the in-flight limit backs off on 429s and on rising latency, grows
back while answers are healthy, and never exceeds ``max_concurrency``."""

from __future__ import annotations

import heapq
import random
from collections import Counter

from dreamer_dagster.llms import OpenAI
from dreamer_dagster.llms.adaptive_concurrency import MIN_SAMPLES, AdaptiveConcurrency


def answer_round(limit: AdaptiveConcurrency, latency: float, tokens: int = 10) -> list[str]:
    """One round's worth of answers, all sent under the current limit."""
    ticket = limit.ticket()
    changes = []
    for _ in range(max(limit.allowed, MIN_SAMPLES)):
        change = limit.answered(ticket, latency, tokens)
        if change is not None:
            changes.append(change)
    return changes


def warmed(maximum: int, latency: float = 0.2, tokens: int = 10, **options) -> AdaptiveConcurrency:
    """A limit past its slow start: healthy rounds double it from half ``maximum`` (at least 4)."""
    limit = AdaptiveConcurrency(maximum, **options)
    assert limit.allowed == min(maximum, max(4, maximum // 2))
    while limit.allowed < maximum:
        before = limit.allowed
        assert answer_round(limit, latency, tokens) == [
            f"concurrency limit {before} -> {min(2 * before, maximum)} of {maximum} (answers are healthy)"
        ]
    return limit


def test_a_healthy_endpoint_keeps_the_full_limit():
    limit = warmed(16)
    for _ in range(50):
        assert answer_round(limit, 0.2) == []
    assert (limit.allowed, limit.lowest, limit.decreases) == (16, 16, 0)


def test_a_long_tail_of_latency_is_not_taken_for_overload():
    """Latency that varies by itself (50 ms plus an exponential tail of mean 100 ms, whatever
    is in flight) is no sign of load: 2,000 answers at up to 50 in flight keep the limit while
    there is work to send (the last answers of a run are its slowest, by survival)."""
    for seed in range(5):
        rng = random.Random(seed)
        limit, in_flight, clock, sent = AdaptiveConcurrency(50), [], 0.0, 0
        while sent < 2000:
            while len(in_flight) < limit.allowed and sent < 2000:
                latency = 0.05 + rng.expovariate(10)
                heapq.heappush(in_flight, (clock + latency, sent, latency, limit.ticket()))
                sent += 1
            clock, _, latency, ticket = heapq.heappop(in_flight)
            limit.answered(ticket, latency, 64)
        assert (limit.decreases, limit.allowed) == (0, 50), seed


def test_an_overload_cuts_once_per_round_trip_and_healthy_rounds_grow_it_back():
    limit = warmed(16)
    sent_before = limit.ticket()
    assert "16 -> 12 of 16 (rate_limited)" in limit.overloaded(sent_before, "rate_limited")
    # The other requests sent under the old limit hit the same 429s: no further cut.
    assert limit.overloaded(sent_before, "rate_limited") is None
    assert limit.allowed == 12
    assert "12 -> 10 of 16 (timeout)" in limit.overloaded(limit.ticket(), "timeout")
    grown = [answer_round(limit, 0.2) for _ in range(6)]
    assert all(changes and "answers are healthy" in changes[0] for changes in grown)
    assert (limit.allowed, limit.lowest) == (16, 10)
    assert limit.overloaded(limit.ticket(), "rate_limited") is not None
    assert limit.allowed == 12


def test_rising_latency_backs_off_and_fast_answers_never_count_as_slow():
    limit = warmed(16, 0.2)
    assert answer_round(limit, 0.2) == []  # the baseline: medians of 16 answers or more
    changes = answer_round(limit, 1.0)  # 5x the baseline latency per token
    assert changes == ["concurrency limit 16 -> 12 of 16 (median latency 1.00s, 5.0x the baseline)"]
    assert limit.allowed == 12
    # A server answering in milliseconds is not at risk of timeouts: no back-off.
    quick = warmed(16, 0.001)
    assert answer_round(quick, 0.02) == [] and quick.allowed == 16


def test_answers_near_the_timeout_back_off_whatever_the_baseline():
    limit = warmed(16, 0.9, latency_ceiling=1.0)
    assert answer_round(limit, 0.9) == []
    changes = answer_round(limit, 1.2)
    assert changes == ["concurrency limit 16 -> 12 of 16 (90th-percentile latency 1.20s, over 1.00s)"]


def test_latency_is_compared_per_token():
    limit = warmed(8, 0.5, tokens=10)
    # Five times the tokens in about five times the time: the server is not slower.
    assert answer_round(limit, 2.0, tokens=84) == []
    assert limit.allowed == 8


def test_disabled_it_is_a_plain_ceiling():
    limit = AdaptiveConcurrency(4, enabled=False)
    assert limit.overloaded(limit.ticket(), "rate_limited") is None
    assert answer_round(limit, 5.0) == [] and limit.allowed == 4


def run(server, prompts: int, max_concurrency: int, **kwargs) -> tuple[list, Counter]:
    llm = OpenAI("fake-chat", base_url=server.base_url, max_concurrency=max_concurrency, **kwargs)
    bound = llm.for_run(cache_folder=None, stats=Counter())
    texts = [f"prompt number {i}" for i in range(prompts)]
    results = bound.run(texts, max_new_tokens=8)
    assert results == [f"Echo: {text}" for text in texts]
    return [request["in_flight"] for request in server.requests], bound.stats


def test_a_server_that_answers_429_above_4_in_flight(openai_server):
    openai_server.latency = 0.02
    openai_server.overload_above = 4
    openai_server.retry_after = "0.01"
    _, stats = run(openai_server, 200, 16, retry_initial_delay=0.01)
    # Without adaptation each answer costs about one 429 here (220 for 200 prompts when tried).
    assert openai_server.statuses[429] == stats["retries_rate_limited"] == stats["retries"]
    assert openai_server.statuses[429] <= 0.25 * 200
    assert stats["concurrency_limit_min"] <= 4
    assert openai_server.max_in_flight <= 16


def test_a_server_that_slows_down_as_it_fills_is_backed_off(openai_server):
    # 20 ms, plus 30 ms per request in flight beyond 8: 260 ms at 16.
    openai_server.latency = 0.02
    openai_server.latency_per_in_flight = 0.03
    openai_server.latency_knee = 8
    in_flight, stats = run(openai_server, 160, 16)
    later = in_flight[len(in_flight) // 2 :]
    assert stats["concurrency_limit_min"] <= 12
    # Tried without adaptation: the second half arrives at 11-13 in flight; with it, at 4.5-6.6.
    assert sum(later) / len(later) < 9
    assert openai_server.statuses[200] == 160 and max(in_flight) <= 16


def test_a_server_that_would_time_out_at_full_concurrency_is_not_driven_into_timeouts(openai_server):
    # 50 ms, plus 80 ms per request in flight beyond 4: over the 0.8 s timeout at 14 in flight.
    openai_server.latency = 0.05
    openai_server.latency_per_in_flight = 0.08
    openai_server.latency_knee = 4
    _, stats = run(openai_server, 80, 16, timeout=0.8, retry_initial_delay=0.05)
    # Tried without adaptation (100 prompts): 203 timed-out attempts, and 303 answers produced
    # (and billed) for 100 prompts, as abandoned requests pile up at the server.
    assert stats["retries_timeout"] < 40
    assert sum(openai_server.answered.values()) < 80 + 40
    assert stats["concurrency_limit_min"] <= 8


def test_a_healthy_server_gets_the_full_concurrency(openai_server):
    openai_server.latency = 0.05
    in_flight, stats = run(openai_server, 120, 8)
    assert stats["concurrency_limit_final"] == 8
    assert max(in_flight) == 8
