"""The example pipeline that `make main` materializes into ./output.

Synthetic data generation on the embedded SmolLM2-135M-Instruct (offline, CPU):
a few arXiv-style abstracts, a tweet for each, and train / validation splits;
then a LoRA fine-tune of SmolLM2 on them (abstract => tweet). Sizes are small
so the whole job runs in a few minutes on 2 CPU cores.
"""

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import SMOLLM2_MODEL_NAME, default_llm
from dreamer_dagster.steps import DataFromPrompt, ProcessWithPrompt
from dreamer_dagster.trainers import TrainHFFineTune

llm = default_llm()

with Pipeline("./output") as pipeline:
    # -- generation -----------------------------------------------------------------
    abstracts = DataFromPrompt(
        "Generate Research Paper Abstracts",
        args={
            "llm": llm,
            "n": 8,
            "temperature": 0.8,
            "top_p": 0.95,
            "max_new_tokens": 48,
            "instruction": "Generate an arXiv abstract of an NLP research paper. Return just the abstract, no titles.",
            "batch_size": 8,
        },
        outputs={"generations": "abstracts"},
    )
    tweets = ProcessWithPrompt(
        "Generate Tweets from Abstracts",
        inputs={"inputs": abstracts.output["abstracts"]},
        args={
            "llm": llm,
            "instruction": "Given the abstract, write a tweet to summarize the work.",
            "max_new_tokens": 32,
            "batch_size": 8,
        },
        outputs={"inputs": "abstracts", "generations": "tweets"},
    )
    splits = tweets.splits(train_size=0.75, validation_size=0.25, name="Abstract Tweet Splits")

    # -- training -------------------------------------------------------------------
    # A LoRA adapter on the embedded SmolLM2 (its shipped weights; no hub access):
    # evaluated on the validation split each epoch, checkpointed in _checkpoints.
    model = TrainHFFineTune(
        "Train an Abstract => Tweet Model",
        model_name=SMOLLM2_MODEL_NAME,
        peft_config={"r": 8, "lora_alpha": 16},
    ).train(
        train_input=splits["train"].output["abstracts"],
        train_output=splits["train"].output["tweets"],
        validation_input=splits["validation"].output["abstracts"],
        validation_output=splits["validation"].output["tweets"],
        epochs=1,
        batch_size=4,
    )

defs = pipeline.definitions()
