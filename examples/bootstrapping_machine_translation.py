"""DataDreamer's quick-tour example "Bootstrapping Synthetic Few-Shot Examples" (English to
Tamil translation in 4 rounds of bootstrapping), ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the embedder: all-MiniLM-L6-v2 (``default_embedder()``, offline) instead of
  ``SentenceTransformersEmbedder("google/mt5-small")``;
- the English sentences come from local files (``examples/data/flores_101_eng_dev.jsonl``,
  eight sentences, and ``..._devtest.jsonl``, four, in FLORES-101's columns) through
  ``JSONDataSource`` instead of ``HFHubDataSource("...", "gsarti/flores_101",
  config_name="eng", split="dev")`` (and ``split="devtest"``): this machine has no
  access to the Hugging Face Hub.

``best_translation_pairs`` is rebound every round; each round's few-shot step reads
the previous round's best pairs, so the loop declares a chain of assets. ``gpt-4``
is called through ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; publishing goes to
``HF_ENDPOINT`` with ``HF_TOKEN``. Run it from the repository root.
"""

from dreamer_dagster import Pipeline
from dreamer_dagster.embedders import default_embedder
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import (
    CosineSimilarity,
    FewShotPrompt,
    JSONDataSource,
    ProcessWithPrompt,
)

with Pipeline("./output") as pipeline:
    # Load GPT-4
    gpt_4 = OpenAI(model_name="gpt-4")

    # Get English sentences
    english_dataset = JSONDataSource(
        "Get FLORES-101 English Sentences",
        data_files="examples/data/flores_101_eng_dev.jsonl",
    ).select_columns(["sentence"])

    # Keep only 400 examples as a quick demo
    english_dataset = english_dataset.take(400)

    # Define how many rounds of bootstrapping
    rounds = 4

    # For each round of bootstrapping
    best_translation_pairs = None
    for r in range(rounds):
        # Use a partial set of the sentences for each round
        sentences_for_round = english_dataset.shard(
            num_shards=rounds, index=r, name=f"Round #{r + 1}: Get Sentences"
        )

        # Create synthetic pairs
        if r == 0:
            # On the first round, ask GPT-4 to zero-shot translate the English sentences
            # to Tamil to create synthetic translation pairs
            english_to_tamil = ProcessWithPrompt(
                f"Round #{r + 1}: Zero-shot Translate from English To Tamil",
                inputs={"inputs": sentences_for_round.output["sentence"]},
                args={
                    "llm": gpt_4,
                    "input_label": "Sentence:",
                    "instruction": "Translate the sentence to Tamil.",
                    "max_new_tokens": 1000,
                },
                outputs={"inputs": "english", "generations": "tamil"},
            ).select_columns(["english", "tamil"])
        else:
            # On subsequent rounds, use the best synthetic translation pairs from the previous round
            # as few-shot examples to translate more English sentences to create even better synthetic pairs
            english_to_tamil = FewShotPrompt(
                f"Round #{r + 1}: Few-shot Translate from English To Tamil",
                inputs={
                    "input_examples": best_translation_pairs.output["english"],
                    "output_examples": best_translation_pairs.output["tamil"],
                    "inputs": sentences_for_round.output["sentence"],
                },
                args={
                    "llm": gpt_4,
                    "input_label": "English:",
                    "output_label": "Tamil:",
                    "instruction": "Translate the sentence to Tamil.",
                    "max_new_tokens": 1000,
                },
                outputs={"inputs": "english", "generations": "tamil"},
            ).select_columns(["english", "tamil"])

        # Automatically filter the best synthetic translation pairs through cosine similarity
        embedder = default_embedder()
        best_translation_pairs = (
            CosineSimilarity(
                f"Round #{r + 1}: Compute Similarities between the Source and Translated Sentences",
                args={"embedder": embedder, "truncate": True},
                inputs={
                    "a": english_to_tamil.output["english"],
                    "b": english_to_tamil.output["tamil"],
                },
                outputs={"a": "english", "b": "tamil"},
            )
            .sort(
                ["similarities"],
                reverse=True,
                name=f"Round #{r + 1}: Rank by Similarities",
            )
            .take(2, name=f"Round #{r + 1}: Get Top-2 Translation Pairs")
        )

    # Load the test set of English sentences
    english_test_dataset = JSONDataSource(
        "Get FLORES-101 English Sentences (Test Set)",
        data_files="examples/data/flores_101_eng_devtest.jsonl",
    ).select_columns(["sentence"])

    # Finally translate the test set with the final bootstrapped synthetic few-shot examples
    english_test_to_tamil = FewShotPrompt(
        "Few-shot Translate from English To Tamil (Test Set)",
        inputs={
            "input_examples": best_translation_pairs.output["english"],
            "output_examples": best_translation_pairs.output["tamil"],
            "inputs": english_test_dataset.output["sentence"],
        },
        args={
            "llm": gpt_4,
            "input_label": "English:",
            "output_label": "Tamil:",
            "instruction": "Translate the sentence to Tamil.",
            "max_new_tokens": 1000,
        },
        outputs={"inputs": "english", "generations": "tamil"},
    ).select_columns(["english", "tamil"])

    # Publish and share the synthetic dataset
    english_test_to_tamil.publish_to_hf_hub(
        "datadreamer-dev/english_to_tamil",
    )

defs = pipeline.definitions()
