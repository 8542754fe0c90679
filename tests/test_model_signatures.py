"""DataDreamer's positional argument order for every model class, so a ported script's
positional calls mean what they meant there; cache_folder_path; the retriever's index_type."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dreamer_dagster.embedders import OpenAIEmbedder, SentenceTransformersEmbedder, default_embedder
from dreamer_dagster.llms import (
    AI21,
    VLLM,
    Anthropic,
    Bedrock,
    Cohere,
    GoogleAIStudio,
    HFAPIEndpoint,
    HFTransformers,
    MistralAI,
    OpenAI,
    Together,
    VertexAI,
)
from dreamer_dagster.retrievers import EmbeddingRetriever
from dreamer_dagster.retrievers import embedding_retriever as retriever_module
from dreamer_dagster.task_models import HFClassificationTaskModel


def attrs(obj, *names):
    return tuple(getattr(obj, name) for name in names)


def test_openai_second_positional_is_the_system_prompt():
    assert OpenAI("gpt-4o-mini", "You are terse.").system_prompt == "You are terse."
    llm = OpenAI("gpt-4o-mini", "Sys", "org-1", "sk-x", "http://h:1/v1", "2024-06-01", False, "/c")
    assert attrs(llm, "system_prompt", "organization", "_api_key", "base_url", "api_version") == (
        "Sys",
        "org-1",
        "sk-x",
        "http://h:1/v1",
        "2024-06-01",
    )
    assert attrs(llm, "retry_on_fail", "cache_folder_path") == (False, "/c")
    assert llm.identity()["api_version"] == "2024-06-01"
    with pytest.raises(TypeError, match="system_prompt"):
        OpenAI("gpt-4o-mini", 7)


def test_openai_api_version_builds_an_azure_client():
    import openai

    llm = OpenAI("gpt-4o", api_version="2024-06-01", azure_endpoint="https://x.openai.azure.com")
    client = llm.make_client("key", sync=True)
    assert isinstance(client, openai.AzureOpenAI)
    assert "x.openai.azure.com" in str(client.base_url)
    assert llm.identity()["azure_endpoint"] == "https://x.openai.azure.com"
    assert isinstance(OpenAI("gpt-4o").make_client("key", sync=True), openai.OpenAI)


def test_hf_transformers_order_and_adapter_kwargs():
    llm = HFTransformers(
        "m",
        "[{{prompt}}]",
        "Sys",
        "rev",
        True,
        "cpu",
        None,
        "float16",
        None,
        "adapter",
        {"revision": "a1"},
        "/c",
    )
    assert attrs(llm, "chat_prompt_template", "system_prompt", "revision", "trust_remote_code", "device") == (
        "[{{prompt}}]",
        "Sys",
        "rev",
        True,
        "cpu",
    )
    assert attrs(llm, "dtype", "adapter_name", "adapter_kwargs", "cache_folder_path") == (
        "float16",
        "adapter",
        {"revision": "a1"},
        "/c",
    )
    assert (
        llm.model_fingerprint
        != HFTransformers(
            "m", "[{{prompt}}]", "Sys", "rev", True, "cpu", None, "float16", None, "adapter"
        ).model_fingerprint
    )
    with pytest.raises(ValueError, match="adapter_kwargs needs an adapter_name"):
        HFTransformers("m", adapter_kwargs={"revision": "x"})
    with pytest.raises(TypeError, match="chat_prompt_template"):
        HFTransformers("m", True)


def test_vllm_order_and_device():
    llm = VLLM("m", None, "Sys", "rev", False, [0, "cuda:1"], "bfloat16", None, 4, "/c")
    assert attrs(llm, "system_prompt", "revision", "devices", "tensor_parallel_size", "swap_space") == (
        "Sys",
        "rev",
        [0, 1],
        2,
        4,
    )
    assert VLLM("org/model-AWQ").quantization == "awq"
    assert VLLM("m", device=0).model_fingerprint == VLLM("m", device=[2, 3]).model_fingerprint
    with pytest.raises(ValueError, match="device"):
        VLLM("m", device="cpu")


def test_embedders_retriever_and_task_model_orders():
    st = SentenceTransformersEmbedder("m", True, "cpu", "float16", "/c", revision="r")
    assert attrs(st, "trust_remote_code", "device", "dtype", "cache_folder_path", "revision") == (
        True,
        "cpu",
        "float16",
        "/c",
        "r",
    )
    with pytest.raises(TypeError, match="trust_remote_code"):
        SentenceTransformersEmbedder("m", "a-revision")
    oe = OpenAIEmbedder("text-embedding-3-small", 256, "org", "sk", "http://h/v1", "v1", False, "/c")
    assert attrs(oe, "dimensions", "organization", "base_url", "api_version", "retry_on_fail") == (
        256,
        "org",
        "http://h/v1",
        "v1",
        False,
    )
    assert (oe.cache_folder_path, oe.max_retries) == ("/c", 0)
    retriever = EmbeddingRetriever(
        ["a", "b"], default_embedder(), True, "HNSW32", 5, "i: ", "q: ", "/c", None
    )
    assert attrs(retriever, "truncate", "index_type", "index_batch_size", "index_instruction") == (
        True,
        "HNSW32",
        5,
        "i: ",
    )
    assert attrs(retriever, "query_instruction", "cache_folder_path") == ("q: ", "/c")
    task = HFClassificationTaskModel("m", "rev", False, "cpu", None, "float16", "ad", {"x": 1}, "/c")
    assert attrs(
        task, "revision", "device", "dtype", "adapter_name", "adapter_kwargs", "cache_folder_path"
    ) == (
        "rev",
        "cpu",
        "float16",
        "ad",
        {"x": 1},
        "/c",
    )


def test_provider_orders():
    assert attrs(Anthropic("c", "k", False, "/c"), "_api_key", "retry_on_fail", "cache_folder_path") == (
        "k",
        False,
        "/c",
    )
    for cls in (MistralAI, GoogleAIStudio, Cohere, AI21):
        llm = cls("m", "k", False, "/c")
        assert attrs(llm, "_api_key", "retry_on_fail", "cache_folder_path") == ("k", False, "/c")
    together = Together("m", "{{prompt}}", "Sys", "k", 100, "tok", "rev", True, False, "/c")
    assert attrs(together, "chat_prompt_template", "system_prompt", "_api_key", "max_context_length") == (
        "{{prompt}}",
        "Sys",
        "k",
        100,
    )
    assert attrs(together, "tokenizer_model_name", "retry_on_fail", "cache_folder_path") == (
        "tok",
        False,
        "/c",
    )
    endpoint = HFAPIEndpoint("http://h:8080", "m", None, "Sys", "hf_x", "rev", True, False, "/c")
    assert attrs(endpoint, "base_url", "system_prompt", "_api_key", "revision", "retry_on_fail") == (
        "http://h:8080/v1",
        "Sys",
        "hf_x",
        "rev",
        False,
    )
    vertex = VertexAI("google/g", "proj", "asia-east1", False, "/c")
    assert attrs(vertex, "vertex_project", "vertex_location", "retry_on_fail", "cache_folder_path") == (
        "proj",
        "asia-east1",
        False,
        "/c",
    )
    bedrock = Bedrock("m", None, None, "eu-west-1", False, "/c")
    assert attrs(bedrock, "aws_region_name", "retry_on_fail", "cache_folder_path") == (
        "eu-west-1",
        False,
        "/c",
    )


def test_cache_folder_path_moves_the_cache_only(openai_server, tmp_path):
    elsewhere = tmp_path / "my_cache"
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, cache_folder_path=str(elsewhere))
    bound = llm.for_run(tmp_path / "output" / ".cache", Counter())
    assert bound.run(["q"]) == ["Echo: q"]
    assert [p.suffix for p in elsewhere.iterdir() if p.suffix == ".db"] == [".db"]
    assert not (tmp_path / "output").exists()
    assert llm.model_fingerprint == OpenAI("fake-chat", base_url=openai_server.base_url).model_fingerprint
    assert llm.for_run(None, Counter()).cache_folder is None  # outside a step: no cache at all


def test_an_approximate_faiss_index_is_built_and_enters_the_identity(monkeypatch):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(300, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    exact = EmbeddingRetriever([f"t{i}" for i in range(300)], default_embedder())
    approximate = EmbeddingRetriever([f"t{i}" for i in range(300)], default_embedder(), index_type="HNSW32")
    assert exact.model_fingerprint != approximate.model_fingerprint
    for retriever in (exact, approximate):
        retriever._index = matrix
    _, found = approximate.search(matrix[:20], k=1)
    assert [row[0] for row in found] == list(range(20))  # each vector finds itself
    _, exact_found = exact.search(matrix[:5], k=4)
    _, numpy_found = retriever_module.exact_top_k(matrix, matrix[:5], 4)
    assert exact_found == numpy_found
    monkeypatch.setattr(retriever_module, "faiss_available", lambda: False)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        EmbeddingRetriever(["a"], default_embedder(), index_type="IVF4,Flat")
