"""``dreamer_dagster.testing`` as a user's tests use it: only its public API (and the
library's), real Dagster, the real IO manager on ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from dreamer_dagster.testing import (
    FakeLLM,
    FakeOpenAIServer,
    MissingAnswerError,
    control,
    start_server_process,
)

TEXTS = ["graph parsing", "neural translation"]


def run(steps: list, instance: dg.DagsterInstance, output: Path) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def column(output: Path, step_folder: str, name: str) -> list:
    """A column of a finished step, read from the documented output folder."""
    import datasets

    return datasets.load_from_disk(str(output / step_folder / "_dataset"))[name]


def metadata(result: dg.ExecuteInProcessResult, step) -> dict:
    [event] = result.asset_materializations_for_node(step.key)
    return {key: value.value for key, value in event.metadata.items()}


def tweets_step(llm) -> ProcessWithPrompt:
    source = DataSource("Abstracts", {"text": TEXTS})
    return ProcessWithPrompt(
        "Tweets",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Tweet it."},
        outputs={"inputs": "abstracts", "generations": "tweets"},
    )


def test_a_step_against_the_loopback_server_with_a_fault_and_its_request_records(
    tmp_path, instance, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAIServer() as server:
        server.fail_next(500)  # the first request fails; the step's retry gets an answer
        tweets = tweets_step(OpenAI("fake-chat", base_url=server.base_url))
        result = run([tweets], instance, tmp_path)
        assert result.success
        assert server.request_count == len(TEXTS) + 1
        assert server.statuses == {500: 1, 200: len(TEXTS)}
        assert all(record["path"] == "/v1/chat/completions" for record in server.requests)
        assert all(record["headers"]["authorization"] == "Bearer test-key" for record in server.requests)
        assert server.max_in_flight >= 1 and all(r["finished"] >= r["started"] for r in server.requests)
        sent = [record["body"]["messages"][-1]["content"] for record in server.requests]
        prompts = [f"Input: {text}\n\nInstruction: Tweet it." for text in TEXTS]
        assert sorted(set(sent)) == sorted(prompts)
        assert sum(server.answered.values()) == len(TEXTS)  # what a provider would bill
    assert column(tmp_path, "tweets", "tweets") == ["Echo: " + prompt for prompt in prompts]
    step_metadata = metadata(result, tweets)
    assert step_metadata["dreamer/model_calls"] == len(TEXTS)
    assert step_metadata["dreamer/retries"] == 1


def test_a_pipeline_on_the_fake_llm_runs_offline_through_the_model_cache(tmp_path, instance):
    llm = FakeLLM(lambda prompt: "tweet about " + prompt.split("\n")[0].removeprefix("Input: "))
    tweets = tweets_step(llm)
    first = run([tweets], instance, tmp_path)
    assert first.success
    assert column(tmp_path, "tweets", "tweets") == [f"tweet about {text}" for text in TEXTS]
    assert len(llm.prompts_sent) == len(TEXTS)
    assert metadata(first, tweets)["dreamer/model_calls"] == len(TEXTS)
    assert list((tmp_path / ".cache").glob("FakeLLM-fake-llm-*.db"))

    # Another step asking the same prompts of the same model is answered from the cache.
    again = ProcessWithPrompt(
        "Retweets",
        inputs={"inputs": DataSource("Abstracts", {"text": TEXTS}).output["text"]},
        args={"llm": llm, "instruction": "Tweet it."},
    )
    second = run([again], instance, tmp_path)
    assert column(tmp_path, "retweets", "generations") == [f"tweet about {text}" for text in TEXTS]
    assert len(llm.prompts_sent) == len(TEXTS)  # no new call
    assert metadata(second, again)["dreamer/cache_hits"] == len(TEXTS)

    # Its answers are its identity: other answers make another step (and another cache).
    other = tweets_step(FakeLLM(lambda prompt: "another answer"))
    assert other.fingerprint != tweets.fingerprint


def test_the_fake_llm_answers_from_a_table_as_a_model_would():
    llm = FakeLLM({"Hi": "Hello there, friend. Bye", "Pick": ["one", "two", "three"], "No": None})
    assert llm.run(["Hi", "Hi"]) == ["Hello there, friend. Bye"] * 2
    assert llm.run(["Hi"], max_new_tokens=2) == ["Hello there,"]
    assert llm.run(["Hi"], stop=". ") == ["Hello there, friend"]
    assert llm.run(["Pick"], n=2) == [["one", "two"]]
    assert llm.run(["Hi"], n=2) == [["Hello there, friend. Bye"] * 2]
    assert llm.run(["No"]) == [None]  # a refusal
    with pytest.raises(MissingAnswerError, match=r"no answer for the prompt 'Unknown'.*Fix: add it"):
        llm.run(["Unknown"])
    with pytest.raises(ValueError, match="has 3 choices, but n=4"):
        llm.run(["Pick"], n=4)
    assert FakeLLM().run(["ping"]) == ["Echo: ping"]
    with pytest.raises(TypeError, match="answers must be a dict"):
        FakeLLM(["not", "a", "table"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="context length of 3 tokens"):
        FakeLLM(context_length=3).run(["a b c d"], max_new_tokens=1)


def test_a_server_in_another_process_is_driven_by_its_control_endpoints():
    import urllib.error
    import urllib.request

    def chat(base_url: str, text: str) -> int:
        body = json.dumps({"model": "fake-chat", "messages": [{"role": "user", "content": text}]})
        request = urllib.request.Request(
            base_url + "/chat/completions", body.encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    with start_server_process() as base_url:
        control(base_url, "/_configure", {"faults": [["503", 1]]})
        assert [chat(base_url, "hi"), chat(base_url, "hi")] == [503, 200]
        stats = control(base_url, "/_stats")
        assert stats["requests"] == 2 and stats["statuses"] == {"503": 1, "200": 1}
        control(base_url, "/_reset")
        assert control(base_url, "/_stats")["requests"] == 0


def test_the_pytest_plugin_gives_a_users_tests_the_server_fixture(pytester):
    pytester.makeconftest('pytest_plugins = ["dreamer_dagster.testing.pytest_plugin"]\n')
    pytester.makepyfile(
        """
        import urllib.request

        def test_uses_the_fixture(openai_server):
            with urllib.request.urlopen(openai_server.base_url + "/models", timeout=30) as response:
                assert response.status == 200
            assert openai_server.request_count == 1 and openai_server.base_url.endswith("/v1")
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_modules_documented_example_passes_as_a_users_test(pytester, monkeypatch):
    import textwrap

    import dreamer_dagster.testing

    doc = dreamer_dagster.testing.__doc__
    example = textwrap.dedent(doc.split("A pytest example::", 1)[1])
    assert "def test_" in example and "FakeOpenAIServer" in example and "FakeLLM" in example
    monkeypatch.setenv("DAGSTER_HOME", str(pytester.path))
    pytester.makepyfile(test_example=example)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
