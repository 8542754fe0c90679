"""The thin provider classes: each sends to its documented base URL with its documented key
variable (checked against the loopback server by overriding the base URL); the classes that
cannot work here say so when declared."""

from __future__ import annotations

from collections import Counter

import pytest

from dreamer_dagster.errors import NonRetryableError
from dreamer_dagster.llms import (
    AI21,
    Bedrock,
    Cohere,
    CTransformers,
    GoogleAIStudio,
    HFAPIEndpoint,
    MistralAI,
    OpenAIAssistant,
    Petals,
    Together,
    VertexAI,
)

KEY = "provider-secret-key-0123456789"

# (class, positional args before the override, key variable, the documented base URL)
PROVIDERS = [
    (Together, ("meta-llama/Llama-3-8b-chat-hf",), "TOGETHER_API_KEY", "https://api.together.xyz/v1"),
    (MistralAI, ("mistral-small-latest",), "MISTRAL_API_KEY", "https://api.mistral.ai/v1"),
    (
        GoogleAIStudio,
        ("gemini-2.0-flash",),
        "GEMINI_API_KEY",
        "https://generativelanguage.googleapis.com/v1beta/openai",
    ),
    (Cohere, ("command-r-plus",), "CO_API_KEY", "https://api.cohere.ai/compatibility/v1"),
    (AI21, ("jamba-1.5-mini",), "AI21_API_KEY", "https://api.ai21.com/studio/v1"),
    (
        Bedrock,
        ("openai.gpt-oss-20b-1:0", None, None, "us-west-2"),
        "AWS_BEARER_TOKEN_BEDROCK",
        "https://bedrock-runtime.us-west-2.amazonaws.com/openai/v1",
    ),
]


@pytest.mark.parametrize(
    ("cls", "args", "variable", "url"), PROVIDERS, ids=lambda v: getattr(v, "__name__", "")
)
def test_provider_sends_to_its_base_url_with_its_key_variable(
    cls, args, variable, url, openai_server, monkeypatch, tmp_path
):
    assert cls(*args).base_url == url
    monkeypatch.setenv(variable, KEY)
    llm = cls(*args, base_url=openai_server.base_url, retry_initial_delay=0.01).for_run(tmp_path, Counter())
    openai_server.fail_next(429, 1)
    assert llm.run(["hello"], max_new_tokens=5) == ["Echo: hello"]
    request = openai_server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["body"]["model"] == args[0]
    assert all(m["role"] != "system" for m in request["body"]["messages"])  # no default system prompt
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes()

    monkeypatch.delenv(variable)
    for fallback in cls.API_KEY_ENV_FALLBACKS:
        monkeypatch.delenv(fallback, raising=False)
    with pytest.raises(NonRetryableError, match=variable):
        cls(*args, base_url=openai_server.base_url).for_run(None, Counter()).run(["x"])
    openai_server.fail_next(401, 1)
    monkeypatch.setenv(variable, KEY)
    with pytest.raises(NonRetryableError, match=rf"{cls.__name__} model '{args[0]}'.*HTTP 401"):
        cls(*args, base_url=openai_server.base_url).for_run(None, Counter()).run(["y"])


def test_key_variable_fallbacks(openai_server, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    llm = GoogleAIStudio("gemini-2.0-flash", base_url=openai_server.base_url).for_run(None, Counter())
    assert llm.run(["hi"]) == ["Echo: hi"]
    assert openai_server.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"


def test_hf_api_endpoint_uses_the_endpoints_messages_api_and_hf_token(openai_server, monkeypatch):
    root = openai_server.base_url.removesuffix("/v1")
    llm = HFAPIEndpoint(root, "HuggingFaceTB/SmolLM2-135M-Instruct", None, "Be brief.")
    assert llm.base_url == openai_server.base_url and llm.system_prompt == "Be brief."
    assert (
        HFAPIEndpoint("HuggingFaceTB/SmolLM2-135M-Instruct", "x").base_url
        == "https://router.huggingface.co/v1"
    )
    monkeypatch.setenv("HF_TOKEN", KEY)
    assert llm.for_run(None, Counter()).run(["hi"]) == ["Echo: hi"]
    request = openai_server.requests[-1]
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    templated = HFAPIEndpoint(root, "m", "<s>[INST] {{prompt}} [/INST]", token="given-token")
    assert templated.for_run(None, Counter()).run(["q"]) == ["Echo: <s>[INST] q [/INST]"]
    assert openai_server.requests[-1]["path"] == "/v1/completions"
    assert openai_server.requests[-1]["headers"]["authorization"] == "Bearer given-token"


def test_together_chat_prompt_template_uses_completions(openai_server, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    llm = Together("m", "### {{system_prompt}}\n{{prompt}}", "Sys", base_url=openai_server.base_url)
    assert llm.for_run(None, Counter()).run(["q"]) == ["Echo: ### Sys\nq"]
    assert openai_server.requests[-1]["path"] == "/v1/completions"
    assert llm.model_fingerprint != Together("m", base_url=openai_server.base_url).model_fingerprint


def test_vertex_ai_builds_its_endpoint_and_takes_an_access_token(openai_server, monkeypatch):
    llm = VertexAI("google/gemini-2.0-flash-001", "my-project", "europe-west4")
    assert llm.base_url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-project/locations/europe-west4"
        "/endpoints/openapi"
    )
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    assert "/projects/env-project/locations/us-central1/" in VertexAI("google/x").base_url
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    with pytest.raises(ValueError, match="GOOGLE_CLOUD_PROJECT"):
        VertexAI("google/x")
    bound = VertexAI("google/x", base_url=openai_server.base_url, api_key="ya29.token").for_run(
        None, Counter()
    )
    assert bound.run(["hi"]) == ["Echo: hi"]
    assert openai_server.requests[-1]["headers"]["authorization"] == "Bearer ya29.token"


def test_bedrock_refuses_iam_keys_with_the_fix():
    with pytest.raises(ValueError, match="AWS_BEARER_TOKEN_BEDROCK"):
        Bedrock("anthropic.claude-3-haiku", "AKIA...", "secret")


@pytest.mark.parametrize(
    ("cls", "instead"),
    [
        (Petals, "HFTransformers"),
        (CTransformers, "GGUF"),
        (OpenAIAssistant, "OpenAI\\(model_name, system_prompt\\)"),
    ],
)
def test_classes_that_cannot_work_here_say_what_to_use(cls, instead):
    with pytest.raises(NotImplementedError, match=rf"{cls.__name__} is not available.*Fix: .*{instead}"):
        cls("some-model")
