"""``retry_on_fail=False`` means no retry anywhere, as in DataDreamer: no HTTP retry in the
client, no step retry by Dagster, and the provider's own exception (``openai.InternalServerError``
for a 500) is in what the caller sees. ``retry_on_fail=True`` (the default) keeps both retries."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import openai
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import OpenAI, ParallelLLM
from dreamer_dagster.retrievers import EmbeddingRetriever
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from dreamer_dagster.translator import DEFAULT_RETRY_POLICY, DreamerTranslator
from tests.support.foundation import materialize


def chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error``, its causes and contexts, each once (script mode may wrap the step's error)."""
    seen: set[int] = set()
    waiting = [error]
    while waiting:
        current = waiting.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        waiting += [current.__cause__, current.__context__]


def provider_error(error: BaseException) -> openai.InternalServerError:
    found = [e for e in chain(error) if isinstance(e, openai.InternalServerError)]
    assert found, f"no openai.InternalServerError in {[type(e).__name__ for e in chain(error)]}"
    return found[0]


def model_requests(server) -> int:
    return sum(1 for r in server.requests if r["path"].endswith("/chat/completions"))


@pytest.fixture
def failing(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    openai_server.fail_next(500, 100)
    return openai_server


def llm_of(server, **kwargs) -> OpenAI:
    return OpenAI("fake-chat", base_url=server.base_url, retry_initial_delay=0.01, **kwargs)


def prompt_step(llm, name: str = "Once") -> ProcessWithPrompt:
    source = DataSource("Texts", {"text": ["only one"]})
    return ProcessWithPrompt(
        name, inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "Go."}
    )


def test_a_step_with_retry_on_fail_false_sends_one_request_and_is_not_retried(tmp_path, instance, failing):
    step = prompt_step(llm_of(failing, retry_on_fail=False))
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the chain is what is checked
        materialize([step], instance, tmp_path / "output")
    assert model_requests(failing) == 1
    assert failing.statuses[500] == 1
    assert provider_error(raised.value).status_code == 500
    assert "DagsterMaxRetriesExceededError" not in {type(e).__name__ for e in chain(raised.value)}


def test_a_script_with_retry_on_fail_false_sees_the_providers_exception(tmp_path, failing, script_home):
    llm = llm_of(failing, retry_on_fail=False)
    with (
        pytest.raises(Exception) as raised,  # noqa: PT011 - the chain is what is checked
        Pipeline(str(tmp_path / "output"), run=True),
    ):
        list(prompt_step(llm).output["generations"])
    assert model_requests(failing) == 1
    assert provider_error(raised.value).status_code == 500


def test_a_direct_run_in_a_session_with_retry_on_fail_false_sends_one_request(tmp_path, failing, script_home):
    llm = llm_of(failing, retry_on_fail=False)
    with (
        Pipeline(str(tmp_path / "output"), run=True),
        pytest.raises(Exception) as raised,  # noqa: PT011 - the chain is what is checked
    ):
        llm.run(["only one"])
    assert model_requests(failing) == 1
    assert provider_error(raised.value).status_code == 500


def test_the_sdk_path_with_retry_on_fail_false_sends_one_request(tmp_path, failing, script_home):
    """``default_query`` is a client kwarg only the SDK takes: the SDK's own retries are off too."""
    llm = llm_of(failing, retry_on_fail=False, default_query={"v": "1"})
    assert not llm.uses_lean_client()
    with (
        Pipeline(str(tmp_path / "output"), run=True),
        pytest.raises(Exception) as raised,  # noqa: PT011 - the chain is what is checked
    ):
        llm.run(["only one"])
    assert model_requests(failing) == 1
    assert provider_error(raised.value).status_code == 500


def test_retry_on_fail_true_keeps_the_http_retries_and_the_step_retry_policy(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    openai_server.fail_next(500, 2)
    llm = llm_of(openai_server, max_retries=2)
    assert llm.run(["only one"]) == ["Echo: only one"]
    assert model_requests(openai_server) == 3  # two 500s retried, then the answer
    translator = DreamerTranslator()
    assert translator.get_op_settings(prompt_step(llm)).retry_policy == DEFAULT_RETRY_POLICY
    # A model that does not retry, alone, in a Parallel* or under a retriever: no step retry.
    quiet = llm_of(openai_server, retry_on_fail=False)
    for model in (quiet, ParallelLLM(llm, quiet)):
        assert translator.get_op_settings(prompt_step(model, "Quiet")).retry_policy is None
    from dreamer_dagster.embedders import OpenAIEmbedder

    source = DataSource("Docs", {"text": ["a", "b"]})
    retriever = EmbeddingRetriever(
        source.output["text"], OpenAIEmbedder("e", base_url=openai_server.base_url)
    )
    assert retriever.embedder.retry_on_fail is False  # DataDreamer's default for OpenAIEmbedder
    from dreamer_dagster.translator import retries_on_fail

    assert not retries_on_fail(retriever)
    # An explicit retry_policy is the user's: it still applies.
    explicit = ProcessWithPrompt(
        "Explicit",
        inputs={"inputs": source.output["text"]},
        args={"llm": quiet, "instruction": "Go."},
        retry_policy=dg.RetryPolicy(max_retries=1),
    )
    assert translator.get_op_settings(explicit).retry_policy == dg.RetryPolicy(max_retries=1)


def test_a_batch_job_with_retry_on_fail_false_is_not_sent_again(openai_server, tmp_path):
    """Batch API rows that expired are sent in a new job only when the model retries."""
    from collections import Counter

    from tests.support.openai_batches import BatchAPI

    batches = BatchAPI(openai_server)
    batches.expire_next = True
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, batch=True, batch_poll_interval=0.01)
    quiet = OpenAI(
        "fake-chat",
        base_url=openai_server.base_url,
        batch=True,
        batch_poll_interval=0.01,
        retry_on_fail=False,
    )
    with pytest.raises(RuntimeError, match="still failed after 1 batch jobs"):
        quiet.for_run(tmp_path, Counter()).run([f"row {i}" for i in range(4)])
    assert list(batches.jobs) == ["batch_1"]
    batches.expire_next = True
    assert llm.for_run(tmp_path, Counter()).run(["again"]) == ["Echo: again"]
    assert len(batches.jobs) == 3  # the expired job, then its rows sent again
