"""Cost from provider-reported usage, the offline estimate of a step, and ``budget_usd``:
checked before anything is sent, enforced while sending, never guessed."""

from __future__ import annotations

import re
from collections import Counter

import dagster as dg
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cost import estimate_step
from dreamer_dagster.embedders import OpenAIEmbedder
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.llms.pricing import PRICES_PER_MILLION
from dreamer_dagster.llms.token_estimate import estimate_tokens
from dreamer_dagster.steps import DataSource, Embed, ProcessWithPrompt, StepDeclarationError
from tests.support.foundation import materialization_metadata, materialize, rows

MINI = PRICES_PER_MILLION["gpt-4o-mini"]


@pytest.fixture
def priced(openai_server, monkeypatch):
    """``OpenAI("gpt-4o-mini")`` (OpenAI's own, so priced) with its client sent to the loopback server."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return OpenAI("gpt-4o-mini", max_concurrency=4, retry_initial_delay=0.01)


def server_cost(server, reasoning: int = 0, cached: int = 0) -> float:
    """What the loopback server's reported usage costs at gpt-4o-mini's price."""
    total = 0.0
    for request in server.requests:
        body = request["body"]
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        answer = "Echo: " + body["messages"][-1]["content"]
        completion = min(len(answer.split()), body.get("max_tokens") or 10**9) + reasoning
        total += MINI.cost(prompt, completion, min(cached, prompt))
    return total


def process(source, llm, name="Process", **args) -> ProcessWithPrompt:
    return ProcessWithPrompt(
        name,
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Shorten it.", "max_new_tokens": 20, **args},
    )


def texts(count: int) -> dict:
    return {"text": [f"text number {i}" for i in range(count)]}


def test_cost_counts_reported_usage_with_reasoning_tokens_apart(priced, openai_server):
    openai_server.reasoning_tokens = 50
    openai_server.cached_prompt_tokens = 4
    llm = priced.for_run(cache_folder=None, stats=Counter())
    llm.run([f"question {i}" for i in range(6)], max_new_tokens=30)
    stats = llm.stats
    assert stats["reasoning_tokens"] == 6 * 50  # billed as output: inside completion_tokens
    assert stats["completion_tokens"] == 6 * 50 + 6 * 3
    assert stats["cached_prompt_tokens"] == 6 * 4
    assert "usage_estimated_calls" not in stats  # every answer carried its usage
    assert stats["estimated_cost_usd"] == pytest.approx(server_cost(openai_server, reasoning=50, cached=4))


def test_a_model_without_a_price_counts_tokens_but_no_cost(openai_server):
    llm = OpenAI("gpt-4o-mini", base_url=openai_server.base_url).for_run(cache_folder=None, stats=Counter())
    llm.run(["a", "b"])
    assert llm.stats["model_calls"] == 2 and llm.stats["prompt_tokens"] > 0
    assert "estimated_cost_usd" not in llm.stats  # a server behind base_url: its price is not known


def test_estimate_counts_uncached_prompts_offline_and_writes_nothing(
    tmp_path, instance, priced, openai_server
):
    output = tmp_path / "output"
    first = DataSource("Texts", texts(4))
    materialize([process(first, priced, name="Warm")], instance, output)  # 4 answers into the cache
    cache_files = sorted((output / ".cache").iterdir())
    requests = openai_server.request_count

    source = DataSource("Texts", texts(10))
    step = process(source, priced)
    assert estimate_step(step, output).note == (
        "upstream step 'Texts' is not materialized yet, so its prompts are not known"
    )
    materialize([source], instance, output)
    estimate = estimate_step(step, output)
    uncached = [f"Input: text number {i}\n\nInstruction: Shorten it." for i in range(4, 10)]
    prompt_tokens = sum(estimate_tokens(p) + estimate_tokens(priced.system_prompt) + 7 for p in uncached)
    assert (estimate.prompts, estimate.uncached_prompts) == (10, 6)
    assert (estimate.prompt_tokens, estimate.completion_tokens) == (prompt_tokens, 6 * 20)
    assert estimate.estimated_usd == pytest.approx(MINI.cost(prompt_tokens, 120), abs=1e-6)
    assert estimate.note is None
    assert openai_server.request_count == requests  # nothing was sent
    assert sorted((output / ".cache").iterdir()) == cache_files
    assert not (output / step.folder).exists()

    materialize([step], instance, output)
    assert estimate_step(step, output).as_dict() == {
        "step": "Process",
        "prompts": 0,
        "uncached_prompts": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "estimated_usd": 0.0,
        "note": "its finished output is reused",
    }


def test_estimate_says_why_a_cost_is_unknown(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    source = DataSource("Texts", texts(3))
    materialize([source], instance, output)
    unpriced = process(source, OpenAI("fake-chat", base_url=openai_server.base_url), max_new_tokens=None)
    estimate = estimate_step(unpriced, output)
    assert estimate.uncached_prompts == 3 and estimate.completion_tokens == 3 * 256
    assert estimate.estimated_usd is None
    assert estimate.note == (
        f"no price is known for OpenAI(model_name='fake-chat', base_url={openai_server.base_url!r}); "
        "max_new_tokens is not set: 256 completion tokens assumed per answer"
    )
    embed = Embed("Embed", inputs={"texts": source.output["text"]}, args={"embedder": OpenAIEmbedder("e")})
    assert estimate_step(embed, output).estimated_usd is None
    assert "OpenAIEmbedder" in estimate_step(embed, output).note
    assert estimate_step(source, output).estimated_usd == 0.0  # reused, and no model anyway
    assert openai_server.request_count == 0


def test_budget_over_the_estimate_fails_before_anything_is_sent(tmp_path, instance, priced, openai_server):
    source = DataSource("Texts", texts(50))
    step = process(source, priced, name="Costly")
    step.budget_usd = 0.0001  # 50 prompts of ~20 tokens and 20 completion tokens: ~$0.0008
    with pytest.raises(dg.Failure) as failure:
        materialize([step], instance, tmp_path)
    assert failure.value.allow_retries is False  # Dagster's RetryPolicy will not re-run it
    message = failure.value.description
    assert "Step 'Costly': the estimated cost $0.0" in message
    assert "of its 50 uncached prompts" in message and "is over its budget_usd=0.0001" in message
    assert "nothing was sent" in message
    assert openai_server.request_count == 0
    assert not (tmp_path / "costly" / "step.json").exists()


def test_budget_stops_sending_once_spent_and_a_rerun_pays_only_the_rest(
    tmp_path, instance, priced, openai_server
):
    # A reasoning model spends far more than the estimate can see: 2,000 reasoning tokens
    # an answer, $0.0012 each, so $0.006 is spent after 5 answers.
    openai_server.reasoning_tokens = 2000
    openai_server.latency = 0.02
    source = DataSource("Texts", texts(40))
    step = process(source, priced, name="Reasoning")
    step.budget_usd = 0.006
    with pytest.raises(dg.Failure) as failure:
        materialize([step], instance, tmp_path)
    assert failure.value.allow_retries is False
    assert re.search(r"Step 'Reasoning' spent \$0\.0\d+ of its budget_usd=0\.006", failure.value.description)
    assert "no more prompts were sent" in failure.value.description
    answered = sum(openai_server.answered.values())
    assert 5 <= answered <= 5 + 4 + 4  # the one that crossed it, plus what was in flight
    assert openai_server.request_count == answered

    step.budget_usd = None
    result = materialize([step], instance, tmp_path)
    metadata = materialization_metadata(result, step)
    assert metadata["dreamer/cache_hits"] == answered  # every answer of the stopped run was kept
    assert metadata["dreamer/model_calls"] == 40 - answered
    assert max(openai_server.answered.values()) == 1 and sum(openai_server.answered.values()) == 40
    # The resumed run counts only what it spent.
    assert metadata["dreamer/estimated_cost_usd"] == pytest.approx(
        (40 - answered) / 40 * server_cost(openai_server, reasoning=2000), rel=0.05
    )
    assert len(rows(tmp_path, step)["generations"]) == 40


def test_a_budget_that_cannot_be_checked_is_said_so(tmp_path, instance, openai_server):
    source = DataSource("Texts", texts(3))
    step = process(source, OpenAI("fake-chat", base_url=openai_server.base_url), name="Local")
    step.budget_usd = 0.01
    result = materialize([step], instance, tmp_path)
    metadata = materialization_metadata(result, step)
    assert metadata["dreamer/budget_usd"] == 0.01
    assert metadata["dreamer/budget_note"] == (
        f"not checked for OpenAI(model_name='fake-chat', base_url={openai_server.base_url!r}): no known price"
    )
    messages = [event.user_message for event in instance.all_logs(result.run_id) if event.user_message]
    assert any("budget_usd=0.01 cannot be checked before the run: no price is known" in m for m in messages)


def test_budget_usd_on_pipeline_and_steps_is_declared_not_fingerprinted(openai_server):
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    with Pipeline("./unused", budget_usd=2.5):
        source = DataSource("Texts", texts(2))
        default = process(source, llm, name="Default")
        own = ProcessWithPrompt(
            "Own",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Shorten it."},
            budget_usd=0.5,
        )
    assert (default.budget_usd, own.budget_usd) == (2.5, 0.5)
    assert default.fingerprint == process(source, llm, name="Default").fingerprint
    with pytest.raises(
        StepDeclarationError, match=r"Step 'Bad' \(ProcessWithPrompt\), argument 'budget_usd'"
    ):
        ProcessWithPrompt(
            "Bad",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "x"},
            budget_usd=-1,
        )
    with pytest.raises(ValueError, match="budget_usd"):
        Pipeline("./unused", budget_usd="ten")
