"""Step retries through Dagster's RetryPolicy: a transient failure re-runs the step, which pays
only for the calls the model cache does not hold; a failure a retry cannot fix is not retried."""

from __future__ import annotations

from collections import Counter

import dagster as dg

from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from tests.support.foundation import materialize, rows

PROMPTS = 12


def attempts(result: dg.ExecuteInProcessResult, step_key: str) -> Counter:
    return Counter(event.event_type_value for event in result.all_events if event.step_key == step_key)


def test_a_500_burst_fails_the_first_attempt_and_the_retry_makes_only_the_missing_calls(
    tmp_path, instance, openai_server
):
    texts = [f"text {i}" for i in range(PROMPTS)]
    texts[6] += " [[fail:500:2]]"  # its first two requests get a 500: more than the LLM's own retries
    llm = OpenAI(
        "fake-chat",
        base_url=openai_server.base_url,
        api_key="test-key",
        max_concurrency=1,
        max_retries=1,
        retry_initial_delay=0.01,
    )
    source = DataSource("Texts", {"text": texts})
    step = ProcessWithPrompt(
        "Burst",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Go."},
        retry_policy=dg.RetryPolicy(max_retries=2),
    )
    result = materialize([step], instance, tmp_path / "output")
    events = attempts(result, "burst")
    assert events["STEP_UP_FOR_RETRY"] == 1 and events["STEP_RESTARTED"] == 1 and events["STEP_SUCCESS"] == 1
    assert openai_server.statuses[500] == 2
    sent = Counter(request["body"]["messages"][-1]["content"] for request in openai_server.requests)
    # Every prompt was answered exactly once over both attempts (the retry read the first six
    # answers from the model cache): twelve 200s, and only the burst's prompt was sent again.
    assert openai_server.statuses[200] == PROMPTS and len(sent) == PROMPTS
    assert sorted(sent.values()) == [1] * (PROMPTS - 1) + [3]
    generations = rows(tmp_path / "output", step)["generations"]
    assert [g.removeprefix("Echo: Input: ").split("\n")[0] for g in generations] == texts


def test_a_rejected_request_is_not_retried(tmp_path, instance, openai_server):
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, api_key="test-key", max_concurrency=1)
    source = DataSource("Texts", {"text": ["a", "b", "c"]})
    step = ProcessWithPrompt(
        "Rejected",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Go."},
        retry_policy=dg.RetryPolicy(max_retries=3),
    )
    materialize([source], instance, tmp_path / "output")
    openai_server.fail_next(401, 100)
    defs_result = _materialize_quietly([step], instance, tmp_path / "output")
    events = attempts(defs_result, "rejected")
    assert events["STEP_FAILURE"] == 1 and events["STEP_UP_FOR_RETRY"] == 0
    [failure] = [e for e in defs_result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "running it again cannot fix it" in str(failure.event_specific_data.error)
    assert openai_server.statuses[401] == 1


def _materialize_quietly(steps, instance, output) -> dg.ExecuteInProcessResult:
    from dreamer_dagster import dreamer_definitions

    defs = dreamer_definitions(steps, output_folder=str(output))
    selection = [step.asset_key for step in steps]
    return dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=selection,
        raise_on_error=False,
    )


def test_the_sample_dagster_yaml_sets_run_retries_monitoring_and_pools(tmp_path):
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert not instance.run_retries_retry_on_asset_or_op_failure  # steps retry by their RetryPolicy
    assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 86400
    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1 and pools.pool_granularity.value == "op"
