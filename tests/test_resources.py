"""OpenAIResource: the key comes from an environment variable through a Dagster resource at run
time, reaches only the models on the resource's endpoint, and never the fingerprint, step.json,
the metadata or the cache; without the resource, OPENAI_API_KEY still works."""

from __future__ import annotations

import dagster as dg

from dreamer_dagster import OpenAIResource, dreamer_definitions
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt


def run(steps, instance, output, resources=None) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output), resources=resources or {})
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def test_the_resource_key_is_used_at_run_time_and_never_stored(
    tmp_path, instance, openai_server, monkeypatch
):
    secret = "sk-resource-secret-0123456789"
    monkeypatch.setenv("MY_OPENAI_KEY", secret)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    source = DataSource("Texts", {"text": ["a", "b"]})
    plain = OpenAI("fake-chat", base_url=openai_server.base_url)
    step = ProcessWithPrompt(
        "Keyed", inputs={"inputs": source.output["text"]}, args={"llm": plain, "instruction": "x"}
    )
    fingerprint = step.fingerprint
    resource = OpenAIResource(api_key=dg.EnvVar("MY_OPENAI_KEY"), base_url=openai_server.base_url, timeout=30)
    result = run([step], instance, tmp_path / "output", {"openai": resource})
    assert result.success
    assert {request["headers"]["authorization"] for request in openai_server.requests} == {f"Bearer {secret}"}
    assert step.fingerprint == fingerprint
    needle = secret.encode()
    leaked = [path for path in tmp_path.rglob("*") if path.is_file() and needle in path.read_bytes()]
    assert leaked == []
    for event in result.all_events:
        assert secret not in str(event.event_specific_data) and secret not in (event.message or "")

    # The definitions hold the key as the variable it comes from (what the UI shows), not its value.
    assert isinstance(resource.api_key, dg.EnvVar) and resource.api_key == "MY_OPENAI_KEY"


def test_the_resource_serves_only_models_on_its_endpoint(tmp_path, instance, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OTHER_KEY", "sk-for-another-endpoint")
    source = DataSource("Texts", {"text": ["a"]})
    model = OpenAI("fake-chat", base_url=openai_server.base_url)
    step = ProcessWithPrompt(
        "Plain", inputs={"inputs": source.output["text"]}, args={"llm": model, "instruction": "x"}
    )
    elsewhere = OpenAIResource(api_key=dg.EnvVar("OTHER_KEY"))  # OpenAI's own API, not this server
    assert run([step], instance, tmp_path / "output", {"openai": elsewhere}).success
    assert openai_server.requests[-1]["headers"]["authorization"] == "Bearer sk-from-the-environment"
    assert not elsewhere.serves(model) and OpenAIResource(base_url=openai_server.base_url + "/").serves(model)
