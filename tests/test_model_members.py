"""DataDreamer's smaller model members with the values DataDreamer gives: token counts
(``count_tokens``, ``final_count_tokens``), sizes (``model_max_length``, ``dims``), the loaded
``model`` and ``tokenizer``, a retriever's ``index``, and a retriever over a step's column
called directly in a running script (docs/parity.md names these tests)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from dreamer_dagster import Pipeline
from dreamer_dagster.embedders import default_embedder
from dreamer_dagster.fingerprint import fingerprint
from dreamer_dagster.llms import default_llm
from dreamer_dagster.retrievers import EmbeddingRetriever
from dreamer_dagster.steps import DataSource
from dreamer_dagster.task_models import HFClassificationTaskModel
from tests.test_task_models import classifier  # noqa: F401 - the fixture

TEXTS = ["A cat sleeps on the sofa.", "Interest rates rose again.", "A kitten naps on the couch."]


def test_llm_token_counts_context_and_loaded_model():
    llm = default_llm()
    try:
        bound = llm.for_run(cache_folder=None, stats=Counter())
        ids = bound.tokenizer("hello there, world", add_special_tokens=False)["input_ids"]
        assert bound.count_tokens("hello there, world") == len(ids) > 0
        # DataDreamer's final_count_tokens: 0 for None and "", else count_tokens.
        assert bound.final_count_tokens(None) == bound.final_count_tokens("") == 0
        assert bound.final_count_tokens("hello there, world") == len(ids)
        assert bound.get_max_context_length(max_new_tokens=12) == 8192 - 12
        assert type(bound.model).__name__ == "LlamaForCausalLM"  # the loaded transformers model
    finally:
        llm.unload_model()


def test_embedder_and_task_model_sizes_and_token_counts(classifier):  # noqa: F811 - the fixture
    embedder = default_embedder()
    assert embedder.dims == 384 and embedder.model_max_length == 256  # all-MiniLM-L6-v2's
    ids = embedder.tokenizer("a cat sleeps", add_special_tokens=True)["input_ids"]
    assert embedder.count_tokens("a cat sleeps") == len(ids)
    task_model = HFClassificationTaskModel(str(classifier))
    assert task_model.model_max_length == 512
    assert task_model.count_tokens("a cat sleeps") == len(ids)  # the same MiniLM tokenizer
    assert type(task_model.model).__name__ == "BertForSequenceClassification"


def test_a_retriever_over_a_steps_column_runs_directly_in_a_script_and_has_its_index(tmp_path, script_home):
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Texts", {"t": TEXTS})
        retriever = EmbeddingRetriever(source.output["t"], default_embedder())
        [found] = retriever.run(["a cat on a couch"], k=2)
        assert sorted(found["indices"]) == [0, 2]
        assert found["texts"] == [TEXTS[i] for i in found["indices"]]
        index = retriever.index
        assert index.shape == (3, 384) and index.dtype == np.float32
        # The texts stay a column reference: the same fingerprint as when Dagster loads the file.
        assert fingerprint(retriever) == fingerprint(
            EmbeddingRetriever(source.output["t"], default_embedder())
        )


def test_api_embedders_count_tokens_as_the_api_llms_do():
    from dreamer_dagster.embedders import OpenAIEmbedder, TogetherEmbedder
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.llms.token_estimate import estimate_tokens

    text = "Interest rates rose again, and again."
    assert OpenAIEmbedder("text-embedding-3-small").count_tokens(text) == estimate_tokens(text) > 0
    assert TogetherEmbedder("m", api_key="k").count_tokens(text) == OpenAI("gpt-4o-mini").count_tokens(text)
