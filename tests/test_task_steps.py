"""CosineSimilarity (texts or precomputed embeddings), FewShotPromptWithRetrieval and
RAGPrompt, materialized through Dagster with real MiniLM embeddings."""

from __future__ import annotations

import re

import dagster as dg
import numpy as np
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cards import CITATION, MODEL_NAME
from dreamer_dagster.embedders import default_embedder
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.retrievers import EmbeddingRetriever
from dreamer_dagster.steps import (
    CosineSimilarity,
    DataSource,
    Embed,
    FewShotPromptWithRetrieval,
    RAGPrompt,
    StepDeclarationError,
)
from tests.support.foundation import materialize, rows, step_json
from tests.support.openai_server import openai_server  # noqa: F401 - the fixture

LEFT = ["A man is playing a guitar.", "The stock market crashed today.", "Dogs love to run in the park."]
RIGHT = ["Someone plays an acoustic guitar.", "A recipe for chocolate cake.", "Dogs love to run in the park."]


def echo_of(generation: str) -> str:
    return re.sub(r" \[seed \d+\]$", "", generation).removeprefix("Echo: ")


def test_cosine_similarity_of_texts_and_of_precomputed_embeddings(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        pairs = DataSource("Pairs", data={"left": LEFT, "right": RIGHT})
        from_texts = CosineSimilarity(
            "Similarity Of Texts",
            inputs={"a": pairs.output["left"], "b": pairs.output["right"]},
            args={"embedder": default_embedder(), "similarity_batch_size": 2},
        )
        left = Embed(
            "Embed Left", inputs={"texts": pairs.output["left"]}, args={"embedder": default_embedder()}
        )
        right = Embed(
            "Embed Right", inputs={"texts": pairs.output["right"]}, args={"embedder": default_embedder()}
        )
        from_vectors = CosineSimilarity(
            "Similarity Of Embeddings",
            inputs={"a": left.output["embeddings"], "b": right.output["embeddings"]},
        )
    materialize([from_texts, from_vectors], instance, output)

    by_texts = rows(output, from_texts)
    assert by_texts["a"] == LEFT and by_texts["b"] == RIGHT
    similarities = by_texts["similarities"]
    assert similarities[0] > similarities[1] + 0.3
    assert similarities[2] == pytest.approx(1.0, abs=1e-5)
    by_vectors = rows(output, from_vectors)
    assert np.allclose(by_vectors["similarities"], similarities, atol=1e-6)
    assert np.asarray(by_vectors["a"]).shape == (3, 384)
    expected = [
        float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        for a, b in zip(np.asarray(by_vectors["a"]), np.asarray(by_vectors["b"]))
    ]
    assert np.allclose(by_vectors["similarities"], expected, atol=1e-6)
    # The three steps share one model cache: each distinct text was embedded once.
    calls = [step_json(output, s)["stats"].get("model_calls", 0) for s in (from_texts, left, right)]
    assert sum(calls) == len(set(LEFT + RIGHT))
    card = step_json(output, from_texts)["data_card"]["Similarity Of Texts"]
    assert card[MODEL_NAME] == ["sentence-transformers/all-MiniLM-L6-v2"]


def test_cosine_similarity_refuses_texts_without_an_embedder(tmp_path, instance):
    pairs = DataSource("Pairs", data={"left": LEFT, "right": RIGHT})
    step = CosineSimilarity("Needs Embedder", inputs={"a": pairs.output["left"], "b": pairs.output["right"]})
    with pytest.raises((ValueError, dg.DagsterExecutionStepExecutionError)) as failure:
        materialize([step], instance, tmp_path / "output")
    assert "Fix: pass args={'embedder'" in f"{failure.value} {failure.value.__cause__}"
    with pytest.raises(StepDeclarationError, match="no embedder"):
        CosineSimilarity(
            "Bad", inputs={"a": pairs.output["left"], "b": pairs.output["right"]}, args={"truncate": True}
        )
    with pytest.raises(StepDeclarationError, match="similarity_batch_size"):
        CosineSimilarity(
            "Bad",
            inputs={"a": pairs.output["left"], "b": pairs.output["right"]},
            args={"embedder": default_embedder(), "similarity_batch_size": 0},
        )


def test_few_shot_prompt_with_retrieval_uses_the_nearest_examples(tmp_path, instance, openai_server):  # noqa: F811
    output = tmp_path / "output"
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, api_key="test-key")
    with Pipeline(str(output)):
        examples = DataSource(
            "Examples",
            data={
                "review": [
                    "The pasta was delicious and the waiter was kind.",
                    "My laptop battery died after a week.",
                    "Great soup, friendly staff, lovely dessert.",
                    "The phone screen cracked on the first day.",
                ],
                "topic": ["restaurant", "electronics", "restaurant", "electronics"],
            },
        )
        inputs = DataSource(
            "Reviews",
            data={"review": ["The steak was tender and the service quick.", "The charger stopped working."]},
        )
        step = FewShotPromptWithRetrieval(
            "Classify Topics",
            inputs={
                "input_examples": examples.output["review"],
                "output_examples": examples.output["topic"],
                "inputs": inputs.output["review"],
            },
            args={"llm": llm, "embedder": default_embedder(), "k": 2, "instruction": "Name the topic."},
        )
    materialize([step], instance, output)

    produced = rows(output, step)
    assert produced["inputs"] == inputs.args["data"]["review"]
    food, gadget = produced["prompts"]
    assert food.startswith("Name the topic.\n\nInput: ")
    assert food.endswith("Input: The steak was tender and the service quick.\nOutput:")
    assert food.count("Output: restaurant") == 2 and "electronics" not in food
    assert gadget.count("Output: electronics") == 2 and "restaurant" not in gadget
    assert [echo_of(g) for g in produced["generations"]] == produced["prompts"]
    record = step_json(output, step)
    assert record["stats"]["retrievals"] == 2  # counted once, though the prompts are read twice
    card = record["data_card"]["Classify Topics"]
    assert "fake-chat" in card[MODEL_NAME] and "sentence-transformers/all-MiniLM-L6-v2" in card[MODEL_NAME]
    assert any("Nearest Neighbor Zero-Shot" in citation for citation in card[CITATION])
    with pytest.raises(StepDeclarationError, match="embedder"):
        FewShotPromptWithRetrieval(
            "Bad",
            inputs={
                "input_examples": examples.output["review"],
                "output_examples": examples.output["topic"],
                "inputs": inputs.output["review"],
            },
            args={"llm": llm, "embedder": llm, "k": 2},
        )


def test_rag_prompt_puts_the_retrieved_documents_in_context(tmp_path, instance, openai_server):  # noqa: F811
    output = tmp_path / "output"
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, api_key="test-key")
    documents = [
        "The Eiffel Tower is in Paris.",
        "Bananas are rich in potassium.",
        "Mount Everest is the highest mountain on Earth.",
    ]
    with Pipeline(str(output)):
        corpus = DataSource("Corpus", data={"text": documents})
        questions = DataSource(
            "Questions", data={"q": ["Where is the Eiffel Tower?", "What is the tallest mountain?"]}
        )
        retriever = EmbeddingRetriever(texts=corpus.output["text"], embedder=default_embedder())
        step = RAGPrompt(
            "Answer With Documents",
            inputs={"prompts": questions.output["q"]},
            args={"llm": llm, "retriever": retriever, "k": 1},
        )
    assert corpus in step.upstream()
    materialize([step], instance, output)

    produced = rows(output, step)
    assert produced["prompts"] == [
        "Document: The Eiffel Tower is in Paris.\n\nQuestion: Where is the Eiffel Tower?",
        "Document: Mount Everest is the highest mountain on Earth.\n\nQuestion: What is the tallest mountain?",
    ]
    assert [echo_of(g) for g in produced["generations"]] == produced["prompts"]
    record = step_json(output, step)
    assert record["stats"]["retrievals"] == 2
    assert any("REALM" in citation for citation in record["data_card"]["Answer With Documents"][CITATION])
    with pytest.raises(StepDeclarationError, match="retriever"):
        RAGPrompt(
            "Bad", inputs={"prompts": questions.output["q"]}, args={"llm": llm, "retriever": "x", "k": 1}
        )
