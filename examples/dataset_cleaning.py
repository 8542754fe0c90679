"""DataDreamer's quick-tour example "Cleaning an Existing Dataset", ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the news articles come from a local file (``examples/data/cnn_dailymail_test.jsonl``,
  six articles in cnn_dailymail's columns) through ``JSONDataSource`` instead of
  ``HFHubDataSource("...", "cnn_dailymail", config_name="3.0.0", split="test")``:
  this machine has no access to the Hugging Face Hub.

``gpt-4`` is called through ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; publishing goes
to ``HF_ENDPOINT`` with ``HF_TOKEN``. Run it from the repository root.
"""

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import FilterWithPrompt, JSONDataSource

with Pipeline("./output") as pipeline:
    # Load GPT-4
    gpt_4 = OpenAI(model_name="gpt-4")

    # Get news articles
    news_dataset = JSONDataSource(
        "Get CNN & Daily Mail News Articles",
        data_files="examples/data/cnn_dailymail_test.jsonl",
    )

    # Keep only 1000 articles as a quick demo
    news_dataset = news_dataset.take(1000)

    # Ask GPT-4 to filter the dataset
    sports_news_dataset = FilterWithPrompt(
        "Filter to only keep sports articles",
        inputs={"inputs": news_dataset.output["article"]},
        args={
            "llm": gpt_4,
            "instruction": "Is the article about sports? Answer 'Yes' or 'No'.",
        },
    )

    # Publish and share the synthetic dataset
    sports_news_dataset.publish_to_hf_hub(
        "datadreamer-dev/cnn_dailymail_sports",
    )

defs = pipeline.definitions()
