"""ParallelEmbedder, ParallelRetriever, ParallelTaskModel (one identity, several copies, one
cache) and TogetherEmbedder, against the loopback embeddings endpoint."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest

from dreamer_dagster.embedders import OpenAIEmbedder, ParallelEmbedder, TogetherEmbedder
from dreamer_dagster.retrievers import EmbeddingRetriever, ParallelRetriever
from dreamer_dagster.task_models import ParallelTaskModel, TaskModel

TEXTS = [f"text number {i}" for i in range(150)]


def embedder(server, **kwargs) -> OpenAIEmbedder:
    return OpenAIEmbedder("fake-embed", dimensions=8, base_url=server.base_url, **kwargs)


def test_parallel_embedder_matches_one_embedder_and_shares_its_cache(openai_server, tmp_path):
    single = embedder(openai_server).for_run(None, Counter())
    expected = single.run(TEXTS, batch_size=10)
    openai_server.reset()
    openai_server.latency = 0.05
    parallel = ParallelEmbedder(embedder(openai_server), embedder(openai_server, timeout=30))
    assert parallel.model_fingerprint == embedder(openai_server).model_fingerprint
    assert parallel.cache_name() == embedder(openai_server).cache_name()
    assert parallel.dims == 8
    bound = parallel.for_run(tmp_path, Counter())
    got = bound.run(TEXTS, batch_size=10)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)) and len(got) == len(TEXTS)
    assert bound.stats["model_calls"] == len(TEXTS)
    assert openai_server.max_in_flight >= 2  # the two copies ran side by side
    again = embedder(openai_server).for_run(tmp_path, Counter())  # one embedder, the same cache
    assert all(np.array_equal(a, b) for a, b in zip(again.run(TEXTS), expected))
    assert again.stats["cache_hits"] == len(TEXTS) and again.stats["model_calls"] == 0
    with pytest.raises(ValueError, match="one identity"):
        ParallelEmbedder(embedder(openai_server), OpenAIEmbedder("other", base_url=openai_server.base_url))
    with pytest.raises(TypeError, match="takes Embedder"):
        ParallelEmbedder(embedder(openai_server), "not a model")


def test_an_embed_step_runs_on_a_parallel_embedder(openai_server, tmp_path, instance):
    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource, Embed
    from tests.support.foundation import materialization_metadata, materialize, rows
    from tests.support.openai_server import fake_embedding

    output = tmp_path / "output"
    with Pipeline(str(output)):
        texts = DataSource("Parallel Texts", data={"text": TEXTS})
        parallel = ParallelEmbedder(embedder(openai_server), embedder(openai_server))
        embed = Embed(
            "Embed In Parallel", inputs={"texts": texts.output["text"]}, args={"embedder": parallel}
        )
    result = materialize([embed], instance, output)
    produced = rows(output, embed)
    assert produced["texts"] == TEXTS
    assert np.allclose(produced["embeddings"], [fake_embedding(text, 8) for text in TEXTS], atol=1e-6)
    metadata = materialization_metadata(result, embed)
    assert metadata["dreamer/model_calls"] == len(TEXTS) and metadata["dreamer/cache_hits"] == 0


def test_parallel_retriever_splits_queries(openai_server, tmp_path):
    documents = [f"document {i}" for i in range(30)]
    one = EmbeddingRetriever(documents, embedder(openai_server))
    expected = one.for_run(None, Counter()).run(TEXTS[:40], k=3)
    parallel = ParallelRetriever(
        EmbeddingRetriever(documents, embedder(openai_server)),
        EmbeddingRetriever(documents, embedder(openai_server)),
    )
    assert parallel.model_fingerprint == one.model_fingerprint
    bound = parallel.for_run(tmp_path, Counter())
    assert bound.run(TEXTS[:40], k=3) == expected
    assert bound.stats["retrievals"] == 40


class LengthModel(TaskModel):
    """A deterministic task model: each text's length, noting which thread answered."""

    def __init__(self, name: str):
        self.model_name = name
        self.threads: set[str] = set()

    def identity(self) -> dict:
        return {"model_name": self.model_name}

    def run(self, texts: Any, batch_size: int = 10, return_generator: bool = False, **kwargs: Any) -> Any:
        def compute(batch: list[str]) -> list[int]:
            self.threads.add(threading.current_thread().name)
            return [len(text) for text in batch]

        results = self.cached_map(texts, request={"task": "length"}, compute=compute, batch_size=batch_size)
        return self.finish(results, return_generator)


def test_parallel_task_model_keeps_order_and_uses_every_copy(tmp_path):
    first, second = LengthModel("len"), LengthModel("len")
    parallel = ParallelTaskModel(first, second)
    bound = parallel.for_run(tmp_path, Counter())
    assert bound.run(TEXTS, batch_size=7) == [len(t) for t in TEXTS]
    assert bound.stats["model_calls"] == len(TEXTS)
    assert len(first.threads | second.threads) == 2  # two worker threads computed
    rerun = LengthModel("len").for_run(tmp_path, Counter())
    assert rerun.run(TEXTS) == [len(t) for t in TEXTS] and rerun.stats["cache_hits"] == len(TEXTS)


def test_together_embedder_base_url_and_key(openai_server, monkeypatch, tmp_path):
    assert (
        TogetherEmbedder("togethercomputer/m2-bert-80M-8k-retrieval").base_url
        == "https://api.together.xyz/v1"
    )
    monkeypatch.setenv("TOGETHER_API_KEY", "together-secret")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    together = TogetherEmbedder("m2-bert", None, 8192, base_url=openai_server.base_url)
    vectors = together.for_run(tmp_path, Counter()).run(["a", "b"])
    assert len(vectors) == 2
    request = openai_server.requests[-1]
    assert (
        request["path"] == "/v1/embeddings"
        and request["headers"]["authorization"] == "Bearer together-secret"
    )
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(RuntimeError, match="TOGETHER_API_KEY"):
        TogetherEmbedder("m2-bert", base_url=openai_server.base_url).for_run(None, Counter()).run(["c"])
