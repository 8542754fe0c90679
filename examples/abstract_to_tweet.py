"""DataDreamer's quick-tour example "Training an 'Abstract to Tweet Model' with Fully
Synthetic Data", ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the model trained: SmolLM2-135M-Instruct (offline, CPU) instead of
  google/t5-v1_1-base, or the model named by ``DREAMER_EXAMPLE_MODEL``;
- tiny sizes: 16 abstracts instead of 1,000, and 1 training epoch instead of 30.

``gpt-4`` is called through ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (the test points
them at a loopback OpenAI-compatible server); publishing goes to ``HF_ENDPOINT`` with
``HF_TOKEN``. Run it from the repository root: ``python examples/abstract_to_tweet.py``.
"""

import os

from peft import LoraConfig

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import SMOLLM2_MODEL_NAME, OpenAI
from dreamer_dagster.steps import DataFromPrompt, ProcessWithPrompt
from dreamer_dagster.trainers import TrainHFFineTune

with Pipeline("./output") as pipeline:
    # Load GPT-4
    gpt_4 = OpenAI(model_name="gpt-4")

    # Generate synthetic arXiv-style research paper abstracts with GPT-4
    arxiv_dataset = DataFromPrompt(
        "Generate Research Paper Abstracts",
        args={
            "llm": gpt_4,
            "n": 16,
            "temperature": 1.2,
            "instruction": (
                "Generate an arXiv abstract of an NLP research paper. Return just the abstract, no titles."
            ),
        },
        outputs={"generations": "abstracts"},
    )

    # Ask GPT-4 to convert the abstracts to tweets
    abstracts_and_tweets = ProcessWithPrompt(
        "Generate Tweets from Abstracts",
        inputs={"inputs": arxiv_dataset.output["abstracts"]},
        args={
            "llm": gpt_4,
            "instruction": ("Given the abstract, write a tweet to summarize the work."),
            "top_p": 1.0,
        },
        outputs={"inputs": "abstracts", "generations": "tweets"},
    )

    # Create training data splits
    splits = abstracts_and_tweets.splits(train_size=0.90, validation_size=0.10)

    # Train a model to convert research paper abstracts to tweets
    # with the synthetic dataset
    trainer = TrainHFFineTune(
        "Train an Abstract => Tweet Model",
        model_name=os.environ.get("DREAMER_EXAMPLE_MODEL", SMOLLM2_MODEL_NAME),
        peft_config=LoraConfig(),
    )
    trainer.train(
        train_input=splits["train"].output["abstracts"],
        train_output=splits["train"].output["tweets"],
        validation_input=splits["validation"].output["abstracts"],
        validation_output=splits["validation"].output["tweets"],
        epochs=1,
        batch_size=8,
    )

    # Publish and share the synthetic dataset
    abstracts_and_tweets.publish_to_hf_hub(
        "datadreamer-dev/abstracts_and_tweets",
        train_size=0.90,
        validation_size=0.10,
    )

    # Publish and share the trained model
    trainer.publish_to_hf_hub("datadreamer-dev/abstracts_to_tweet_model")

defs = pipeline.definitions()
