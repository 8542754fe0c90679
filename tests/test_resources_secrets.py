"""Keys as Dagster resources for every API path: ``AnthropicResource``, ``BedrockResource``,
``HFTokenResource`` (HFAPIEndpoint and ``publish_to_hf_hub``) and a ``dagster_openai``
``OpenAIResource`` each give their key at run time from a ``dg.EnvVar``; the key reaches the
server and never Dagster's storage (run and event-log databases), the output folder or the
events."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import (
    AnthropicResource,
    BedrockResource,
    HFTokenResource,
    Pipeline,
    dreamer_definitions,
)
from dreamer_dagster.llms import Anthropic, Bedrock, HFAPIEndpoint, OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt


def run(steps, instance, output: Path, resources: dict) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output), resources=resources)
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def prompt_step(name: str, llm) -> ProcessWithPrompt:
    source = DataSource(f"{name} texts", {"text": ["a", "b"]})
    return ProcessWithPrompt(
        name, inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "x"}
    )


def sent_key(request: dict) -> str | None:
    headers = request["headers"]
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def assert_nowhere(secret: str, instance: dg.DagsterInstance, *folders: Path, result=None) -> None:
    """``secret`` in no file of Dagster's storage (run and event-log sqlite files), of
    ``folders``, nor in any event of ``result``."""
    needle = secret.encode()
    storage = Path(instance.root_directory)
    databases = [path for path in storage.rglob("*.db") if path.is_file()]
    assert databases, f"no Dagster storage found under {storage}"
    for folder in (storage, *folders):
        leaked = [path for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]
        assert leaked == [], leaked
    for record in instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION)
    ):
        assert secret not in str(record.event_log_entry)
    if result is not None:
        for event in result.all_events:
            assert secret not in str(event.event_specific_data) and secret not in (event.message or "")


def test_anthropic_resource_gives_the_key_at_run_time(tmp_path, instance, anthropic_server, monkeypatch):
    secret = "sk-ant-resource-secret-0123456789"
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("MY_ANTHROPIC_KEY", secret)
    step = prompt_step("Claude", Anthropic("claude-fake-1", base_url=anthropic_server.root_url))
    fingerprint = step.fingerprint
    resource = AnthropicResource(api_key=dg.EnvVar("MY_ANTHROPIC_KEY"), base_url=anthropic_server.root_url)
    result = run([step], instance, tmp_path / "output", {"anthropic": resource})
    assert result.success
    assert {sent_key(request) for request in anthropic_server.requests} == {secret}
    assert step.fingerprint == fingerprint
    assert_nowhere(secret, instance, tmp_path, result=result)
    # Another endpoint's resource does not serve the model: without a key it fails, naming the fix.
    other = AnthropicResource(api_key=dg.EnvVar("MY_ANTHROPIC_KEY"))
    assert not other.serves(Anthropic("claude-fake-1", base_url=anthropic_server.root_url))
    assert other.serves(Anthropic("claude-fake-1"))


@pytest.mark.parametrize("kind", ["bedrock", "hf_api_endpoint"])
def test_bedrock_and_hf_token_resources_give_the_key_at_run_time(
    tmp_path, instance, openai_server, monkeypatch, kind
):
    secret = f"resource-secret-for-{kind}-0123456789"
    for name in ("AWS_BEARER_TOKEN_BEDROCK", "HF_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MY_KEY", secret)
    if kind == "bedrock":
        llm = Bedrock("fake-chat", aws_region_name="eu-west-1", base_url=openai_server.base_url)
        resources = {"bedrock": BedrockResource(api_key=dg.EnvVar("MY_KEY"), aws_region_name="eu-west-1")}
        assert not BedrockResource(aws_region_name="us-east-1").serves(llm)
    else:
        llm = HFAPIEndpoint(openai_server.base_url.removesuffix("/v1"), "fake-chat")
        resources = {"hf": HFTokenResource(token=dg.EnvVar("MY_KEY"))}
    step = prompt_step("Keyed", llm)
    result = run([step], instance, tmp_path / "output", resources)
    assert result.success
    assert {request["headers"]["authorization"] for request in openai_server.requests} == {f"Bearer {secret}"}
    assert_nowhere(secret, instance, tmp_path, result=result)


def test_hf_token_resource_publishes_to_the_hub(tmp_path, instance, openai_server, monkeypatch):
    from huggingface_hub import constants

    from tests.support.hf_hub_server import add_hub_routes

    secret = "hf_resource_secret_0123456789"
    hub = add_hub_routes(openai_server)
    monkeypatch.setattr(constants, "ENDPOINT", openai_server.base_url.removesuffix("/v1"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("MY_HF_TOKEN", secret)
    with Pipeline(str(tmp_path / "output"), run=False) as pipeline:
        source = DataSource("Source", {"text": ["a", "b"]})
        source.publish_to_hf_hub("someone/rows")
    defs = pipeline.definitions(resources={"hf": HFTokenResource(token=dg.EnvVar("MY_HF_TOKEN"))})
    result = dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
    assert result.success
    assert hub.authorizations == {f"Bearer {secret}"}
    assert "data/train-00000-of-00001.parquet" in hub.repo_files("datasets", "someone/rows")
    assert_nowhere(secret, instance, tmp_path, result=result)


def test_an_empty_key_fails_at_setup_naming_the_fix(tmp_path, instance, anthropic_server, monkeypatch):
    monkeypatch.setenv("EMPTY_KEY", " ")
    step = prompt_step("Claude", Anthropic("claude-fake-1", base_url=anthropic_server.root_url))
    resource = AnthropicResource(api_key=dg.EnvVar("EMPTY_KEY"), base_url=anthropic_server.root_url)
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        run([step], instance, tmp_path / "output", {"anthropic": resource})
    assert "AnthropicResource: the api_key is empty. Fix: set the environment variable" in str(
        raised.value.__cause__
    )
    assert anthropic_server.requests == []


def test_a_dagster_openai_resource_gives_its_settings_and_gets_its_usage_keys(
    tmp_path, instance, openai_server, monkeypatch
):
    dagster_openai = pytest.importorskip("dagster_openai")
    secret = "sk-dagster-openai-secret-0123456789"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MY_OPENAI_KEY", secret)
    step = prompt_step("Chat", OpenAI("fake-chat", base_url=openai_server.base_url))
    resource = dagster_openai.OpenAIResource(
        api_key=dg.EnvVar("MY_OPENAI_KEY"), project="proj_1", base_url=openai_server.base_url
    )
    result = run([step], instance, tmp_path / "output", {"openai": resource})
    assert result.success
    headers = [request["headers"] for request in openai_server.requests]
    assert {h["authorization"] for h in headers} == {f"Bearer {secret}"}
    assert {h.get("openai-project") for h in headers} == {"proj_1"}
    [event] = result.asset_materializations_for_node(step.key)
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["openai.calls"] == 2 and metadata["openai.fake-chat.calls"] == 2
    assert (
        metadata["openai.total_tokens"]
        == metadata["openai.prompt_tokens"] + metadata["openai.completion_tokens"]
        > 0
    )
    assert_nowhere(secret, instance, tmp_path, result=result)
