"""DataDreamer's quick-tour example "Instruction-Tuning a LLM" (LoRA), ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the model: SmolLM2-135M-Instruct (offline, CPU) instead of
  TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T, or the model named by
  ``DREAMER_EXAMPLE_MODEL``; the GPU options (``device=["cuda:0", "cuda:1"]``,
  ``dtype="bfloat16"``) are dropped: this machine has no GPU;
- the instructions come from a local file (``examples/data/alpaca_cleaned_train.jsonl``,
  ten rows in yahma/alpaca-cleaned's columns) through ``JSONDataSource`` instead of
  ``HFHubDataSource("...", "yahma/alpaca-cleaned", split="train")``: this machine has
  no access to the Hugging Face Hub.

As in DataDreamer's text, the result of ``.map(...)`` is not assigned, so the
training reads the instructions as they were (the map still runs, as its own step).
Run it from the repository root: ``python examples/instruction_tuning.py``.
"""

import os

from peft import LoraConfig

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import SMOLLM2_MODEL_NAME
from dreamer_dagster.steps import JSONDataSource
from dreamer_dagster.trainers import TrainHFFineTune

with Pipeline("./output") as pipeline:
    # Get the Alpaca instruction-tuning dataset (cleaned version)
    instruction_tuning_dataset = JSONDataSource(
        "Get Alpaca Instruction-Tuning Dataset", data_files="examples/data/alpaca_cleaned_train.jsonl"
    )

    # Keep only 1000 examples as a quick demo
    instruction_tuning_dataset = instruction_tuning_dataset.take(1000)

    # Some examples taken in an "input", we'll format those into the instruction
    instruction_tuning_dataset.map(
        lambda row: {
            "instruction": (
                row["instruction"]
                if len(row["input"]) == 0
                else f"Input: {row['input']}\n\n{row['instruction']}"
            ),
            "output": row["output"],
        },
        lazy=False,
    )

    # Create training data splits
    splits = instruction_tuning_dataset.splits(train_size=0.90, validation_size=0.10)

    # Define what the prompt template should be when instruction-tuning
    chat_prompt_template = "### Instruction:\n{{prompt}}\n\n### Response:\n"

    # Instruction-tune the base TinyLlama model to make it follow instructions
    trainer = TrainHFFineTune(
        "Instruction-Tune TinyLlama",
        model_name=os.environ.get("DREAMER_EXAMPLE_MODEL", SMOLLM2_MODEL_NAME),
        chat_prompt_template=chat_prompt_template,
        peft_config=LoraConfig(),
    )
    trainer.train(
        train_input=splits["train"].output["instruction"],
        train_output=splits["train"].output["output"],
        validation_input=splits["validation"].output["instruction"],
        validation_output=splits["validation"].output["output"],
        epochs=3,
        batch_size=1,
        gradient_accumulation_steps=32,
    )

defs = pipeline.definitions()
