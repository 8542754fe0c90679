"""EmbeddingRetriever: exact search, a texts column as a dependency, the Retrieve step
through Dagster, and cached retrievals (a re-run embeds and searches nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cards import CITATION, MODEL_NAME
from dreamer_dagster.embedders import default_embedder
from dreamer_dagster.retrievers import EmbeddingRetriever
from dreamer_dagster.retrievers import embedding_retriever as retriever_module
from dreamer_dagster.steps import DataSource, Retrieve, StepDeclarationError
from tests.support.foundation import materialization_metadata, materialize, rows, step_json

DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar in plants.",
    "The Great Barrier Reef is the world's largest coral reef system, off Australia.",
    "Python is a programming language that emphasizes code readability.",
]
QUERIES = [
    "What is the capital of France?",
    "How do plants make food from light?",
    "Which language is known for readable code?",
]


@pytest.mark.parametrize("faiss", [True, False], ids=["faiss", "numpy"])
def test_search_is_exact_and_ties_go_to_the_lower_index(monkeypatch, faiss):
    if faiss and not retriever_module.faiss_available():
        pytest.skip("faiss-cpu is not installed")
    monkeypatch.setattr(retriever_module, "faiss_available", lambda: faiss)
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 6)).astype(np.float32)
    matrix[7] = matrix[3]  # a tie
    queries = np.vstack([matrix[3], rng.normal(size=(2, 6)).astype(np.float32)])
    retriever = EmbeddingRetriever(texts=[f"t{i}" for i in range(50)], embedder=default_embedder())
    retriever._index = matrix
    assert retriever.uses_faiss is faiss
    monkeypatch.setattr(retriever_module, "SEARCH_BLOCK", 8)  # several blocks to merge
    scores, indices = retriever.search(queries, k=5)
    brute = queries @ matrix.T
    for row, (row_scores, row_indices) in enumerate(zip(scores, indices)):
        expected = sorted(range(50), key=lambda i: (-brute[row, i], i))[:5]
        assert row_indices == expected
        assert np.allclose(row_scores, brute[row, expected], atol=1e-5)
    assert indices[0][:2] == [3, 7]
    # k beyond the index size gives every text.
    assert len(retriever.search(queries[:1], k=500)[1][0]) == 50


def test_embedding_retriever_finds_the_relevant_text():
    retriever = EmbeddingRetriever(texts=DOCUMENTS, embedder=default_embedder())
    results = retriever.run(QUERIES, k=2)
    assert [result["indices"][0] for result in results] == [0, 1, 3]
    for result in results:
        assert set(result) == {"indices", "texts", "scores"}
        assert result["texts"] == [DOCUMENTS[i] for i in result["indices"]]
        assert len(result["indices"]) == 2 and result["scores"][0] >= result["scores"][1]
    with pytest.raises(ValueError, match="k must be"):
        retriever.run(QUERIES, k=0)
    with pytest.raises(TypeError, match="list of strings"):
        EmbeddingRetriever(texts="one text", embedder=default_embedder())


def test_retrieve_step_over_a_column_and_a_cached_rerun(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        documents = DataSource("Documents", data={"text": DOCUMENTS})
        questions = DataSource("Questions", data={"question": QUERIES})
        retriever = EmbeddingRetriever(texts=documents.output["text"], embedder=default_embedder())
        retrieve = Retrieve(
            "Retrieve Passages",
            inputs={"queries": questions.output["question"]},
            args={"retriever": retriever, "k": 3},
        )
    # The indexed column's step is upstream of the retrieval (a Dagster dependency).
    assert documents in retrieve.upstream()
    assert documents.asset_key in retrieve.asset.dependency_keys
    result = materialize([retrieve], instance, output)
    metadata = materialization_metadata(result, retrieve)
    # Every document and query embedded once; nothing came from a cache.
    assert metadata["dreamer/model_calls"] == len(DOCUMENTS) + len(QUERIES)
    assert metadata["dreamer/cache_hits"] == 0

    produced = rows(output, retrieve)
    assert produced["queries"] == QUERIES
    assert [result["indices"][0] for result in produced["results"]] == [0, 1, 3]
    assert all(len(result["texts"]) == 3 for result in produced["results"])
    assert produced["results"][0]["texts"][0] == DOCUMENTS[0]
    record = step_json(output, retrieve)
    assert record["stats"]["retrievals"] == 3
    assert record["stats"]["model_calls"] == len(DOCUMENTS) + len(QUERIES)
    card = record["data_card"]["Retrieve Passages"]
    assert card[MODEL_NAME] == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert any("Sentence-BERT" in citation for citation in card[CITATION])

    # Same retriever and queries in a new step: every retrieval comes from the cache,
    # so nothing is embedded (the index is never built).
    with Pipeline(str(output)):
        again = Retrieve(
            "Retrieve Passages Again",
            inputs={"queries": questions.output["question"]},
            args={"retriever": retriever, "k": 3, "batch_size": 2},
        )
    result = materialize([again], instance, output, only=[again])
    metadata = materialization_metadata(result, again)
    assert metadata["dreamer/model_calls"] == 0 and metadata["dreamer/cache_hits"] == 3
    stats = step_json(output, again)["stats"]
    assert stats["model_calls"] == 0 and stats["retrievals"] == 0
    assert stats["retrieval_cache_hits"] == 3
    assert rows(output, again)["results"] == produced["results"]

    # Another k is another request: searched again, but every embedding is cached.
    with Pipeline(str(output)):
        top_one = Retrieve(
            "Retrieve Top One",
            inputs={"queries": questions.output["question"]},
            args={"retriever": retriever, "k": 1},
        )
    result = materialize([top_one], instance, output, only=[top_one])
    metadata = materialization_metadata(result, top_one)
    # The index's documents and the queries: every embedding from the embedder's cache.
    assert metadata["dreamer/model_calls"] == 0
    assert metadata["dreamer/cache_hits"] == len(DOCUMENTS) + len(QUERIES)
    stats = step_json(output, top_one)["stats"]
    assert stats["retrievals"] == 3 and stats["model_calls"] == 0
    assert [r["indices"] for r in rows(output, top_one)["results"]] == [[0], [1], [3]]


def test_the_indexed_texts_enter_the_fingerprint():
    documents = DataSource("Docs A", data={"text": DOCUMENTS})
    other = DataSource("Docs B", data={"text": DOCUMENTS[:2]})
    questions = DataSource("Qs", data={"q": QUERIES})

    def retrieve(texts):
        return Retrieve(
            "R",
            inputs={"queries": questions.output["q"]},
            args={"retriever": EmbeddingRetriever(texts=texts, embedder=default_embedder())},
        )

    assert retrieve(documents.output["text"]).fingerprint == retrieve(documents.output["text"]).fingerprint
    assert retrieve(documents.output["text"]).fingerprint != retrieve(other.output["text"]).fingerprint
    assert retrieve(DOCUMENTS).fingerprint != retrieve(DOCUMENTS[:3]).fingerprint
    with pytest.raises(StepDeclarationError, match="retriever"):
        Retrieve("R", inputs={"queries": questions.output["q"]}, args={"retriever": default_embedder()})
    with pytest.raises(StepDeclarationError, match="'k'"):
        Retrieve(
            "R",
            inputs={"queries": questions.output["q"]},
            args={"retriever": EmbeddingRetriever(DOCUMENTS, default_embedder()), "k": 0},
        )
