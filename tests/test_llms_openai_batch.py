"""OpenAI(batch=True): prompts go as Batch API jobs against the loopback server's /v1/files and
/v1/batches routes; a killed run resumes polling its saved job; only failed or expired rows
are sent again; every answer lands in the model cache for a later non-batch run."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dreamer_dagster.llms import OpenAI, openai_batch
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from tests.support.foundation import materialization_metadata, materialize, rows
from tests.support.openai_batches import BatchAPI


@pytest.fixture
def batches(openai_server) -> BatchAPI:
    return BatchAPI(openai_server)


def batch_llm(server, **kwargs) -> OpenAI:
    return OpenAI("fake-chat", base_url=server.base_url, batch=True, batch_poll_interval=0.01, **kwargs)


def chat_requests(server) -> int:
    return sum(r["path"] == "/v1/chat/completions" for r in server.requests)


def test_a_step_runs_as_batch_jobs_and_a_later_plain_run_reads_the_cache(
    openai_server, batches, tmp_path, instance
):
    texts = [f"abstract {i}" for i in range(12)] + ["flaky [[batchfail]]"]
    source = DataSource("Abstracts", {"text": texts})
    step = ProcessWithPrompt(
        "Summarize In Batch",
        inputs={"inputs": source.output["text"]},
        args={"llm": batch_llm(openai_server), "instruction": "Summarize."},
    )
    output = tmp_path / "output"
    result = materialize([step], instance, output)
    generations = rows(output, step)["generations"]
    assert len(generations) == 13 and all(g.startswith("Echo: ") and "Summarize." in g for g in generations)
    assert chat_requests(openai_server) == 0  # nothing went through the synchronous endpoint
    assert len(batches.jobs) == 2  # the first job, then one with the failed row only
    second = batches.jobs["batch_2"]
    assert second["request_counts"]["total"] == 1
    assert sorted(batches.rows_batched.values()) == [1] * 12 + [2]
    metadata = materialization_metadata(result, step)
    assert metadata["dreamer/batch_jobs"] == 2 and metadata["dreamer/batch_rows_resent"] == 1
    assert metadata["dreamer/model_calls"] == 13
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    for status in ("validating", "in progress", "finalizing", "completed"):
        assert f"batch job batch_1: {status}" in logged
    state = json.loads((output / step.folder / "_model_state" / openai_batch.BATCH_STATE_FILE).read_text())
    assert [job["batch_id"] for job in state["jobs"]] == ["batch_1", "batch_2"]

    plain = OpenAI("fake-chat", base_url=openai_server.base_url)
    assert plain.model_fingerprint == batch_llm(openai_server).model_fingerprint
    again = ProcessWithPrompt(
        "Summarize Plainly",
        inputs={"inputs": source.output["text"]},
        args={"llm": plain, "instruction": "Summarize."},
    )
    rerun = materialize([again], instance, output)
    assert rows(output, again)["generations"] == generations
    assert chat_requests(openai_server) == 0 and len(batches.jobs) == 2
    assert materialization_metadata(rerun, again)["dreamer/cache_hits"] == 13


class Killed(Exception):
    pass


def test_a_killed_run_resumes_polling_its_job_instead_of_resubmitting(
    openai_server, batches, tmp_path, monkeypatch
):
    prompts = [f"q{i}" for i in range(8)]
    state = tmp_path / "step" / "_model_state"
    first = batch_llm(openai_server).for_run(tmp_path / "cache", Counter())
    first.state_folder = state
    real_sleep = openai_batch.time.sleep

    def die(seconds: float) -> None:
        raise Killed

    monkeypatch.setattr(openai_batch.time, "sleep", die)  # dies at the first wait between polls
    with pytest.raises(Killed):
        first.run(prompts)
    assert len(batches.jobs) == 1 and (state / openai_batch.BATCH_STATE_FILE).is_file()
    monkeypatch.setattr(openai_batch.time, "sleep", real_sleep)

    second = batch_llm(openai_server).for_run(tmp_path / "cache", Counter())
    second.state_folder = state
    assert second.run(prompts) == [f"Echo: {p}" for p in prompts]
    assert len(batches.jobs) == 1  # resumed: no second job
    assert set(batches.rows_batched.values()) == {1}
    assert batches.polls["batch_1"] >= 3
    assert second.stats["batch_jobs"] == 0 and second.stats["model_calls"] == 8


def test_an_expired_job_resends_only_its_unanswered_rows(openai_server, batches, tmp_path):
    batches.expire_next = True
    llm = batch_llm(openai_server).for_run(tmp_path, Counter())
    prompts = [f"row {i}" for i in range(10)]
    assert llm.run(prompts) == [f"Echo: {p}" for p in prompts]
    assert batches.jobs["batch_1"]["status"] == "expired"
    assert batches.jobs["batch_2"]["request_counts"]["total"] == 5
    assert sum(batches.rows_batched.values()) == 15


def test_a_row_rejected_with_a_4xx_fails_at_once(openai_server, batches, tmp_path):
    from dreamer_dagster.errors import NonRetryableError

    openai_server.add_route("POST", r"/v1/chat/completions", lambda request: _bad_request())
    llm = batch_llm(openai_server).for_run(tmp_path, Counter())
    with pytest.raises(NonRetryableError, match="HTTP 400"):
        llm.run(["fine", "bad"])
    assert len(batches.jobs) == 1  # not sent again


def _bad_request():
    from tests.support.openai_server import _error

    return _error(400, "Invalid request.", "invalid_request_error")


def test_batch_is_only_for_openai_itself(openai_server):
    from dreamer_dagster.llms import Together

    with pytest.raises(ValueError, match="Batch API"):
        Together("m", batch=True)


def test_batch_api_answers_cost_half_the_synchronous_price(openai_server, batches, tmp_path, monkeypatch):
    """The same prompts, the same reported usage: answered by Batch API jobs they cost half."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)  # OpenAI's own model: priced
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    prompts = [f"price question {i}" for i in range(6)]
    plain = OpenAI("gpt-4o-mini").for_run(tmp_path / "plain", Counter())
    batched = OpenAI("gpt-4o-mini", batch=True, batch_poll_interval=0.01).for_run(
        tmp_path / "batch", Counter()
    )
    assert plain.run(prompts) == batched.run(prompts)
    assert chat_requests(openai_server) == 6 and len(batches.jobs) == 1  # each path sent all six
    for key in ("prompt_tokens", "completion_tokens"):
        assert batched.stats[key] == plain.stats[key] > 0
    assert plain.stats["estimated_cost_usd"] > 0
    assert batched.stats["estimated_cost_usd"] == pytest.approx(plain.stats["estimated_cost_usd"] / 2)
